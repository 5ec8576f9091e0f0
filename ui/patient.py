"""A simulated patient: answers each screen of the kiosk as a script says, with the touches a screen emits.

Demos and end-to-end tests need someone to press the buttons. :class:`Patient` listens to the
kiosk's state changes (on the flow thread, so it only *posts*, never waits) and answers each state
with the touch the script names, carrying that state entry's token, exactly as
:meth:`ui.window.KioskWindow.touch` does for a finger. PIN digits go through
:meth:`firmware.app.Kiosk.touch` like the keypad's. During the face step a small thread watches the
challenge the screen shows and has the simulated person in front of the camera (if any) perform it
— the simulated patient reads the screen.

Nothing here is used by the kiosk itself.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Patient:
    """What this patient does at each screen (defaults: a card holder who uses the PIN and agrees)."""

    method: str = "pin"  # face / pin / visual (a card); phones prove themselves
    pin: str = "1234"  # comma-separated for several attempts ("0000,1234": wrong, then right)
    proxy: bool = False
    consent: str = "all"  # all / none / same / items (then ``items`` are switched on)
    items: tuple[str, ...] = ()
    prescription: str = "electronic"
    register: bool = True
    #: the state in which the card is pulled out (once), or None
    remove_in: str | None = None
    #: ask for more time once at this state's timeout (else let it run out)
    more_time: bool = True
    #: a state where the patient hesitates the first time (answers nothing until the time runs out)
    hesitate_in: str | None = None
    #: after a failed face try: try the face again (until tries run out), or switch to ``fallback``
    retry_face: bool = False
    fallback: str = "pin"
    person: object | None = None  # a simulated person before the face camera (hal.sim), to react
    hand: object | None = None  # what takes the card out (a scenario's hand; default the sim reader)
    only_face: bool = False  # press nothing; only perform the face challenge (a demo window's user presses)
    states: list[str] = field(default_factory=list)
    _kiosk: object | None = None
    _watch: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _removed_once: bool = False
    _choices: int = 0
    _attempt: int = 0

    def attach(self, kiosk) -> Patient:
        self._kiosk = kiosk
        kiosk.add_listener(self._on_state)
        return self

    def detach(self) -> None:
        self._stop.set()
        self._kiosk = None

    # ------------------------------------------------------------------ on the flow thread

    def _touch(self, event: str, **data) -> None:
        kiosk = self._kiosk
        if kiosk is not None:
            kiosk.touch(event, kiosk.flow.token, **data)

    def _on_state(self, state: str, session) -> None:
        if self._kiosk is None:
            return
        self.states.append(state)
        if state == self.remove_in and not self._removed_once:
            self._removed_once = True
            remove = self.hand.remove if self.hand is not None else self._kiosk.reader.remove
            threading.Thread(target=remove, name="patient-remove", daemon=True).start()
            return
        if self.only_face:
            if state == "face":
                self._at_face(session)
            return
        if state == self.hesitate_in:
            self.hesitate_in = None
            return
        answer = getattr(self, f"_at_{state}", None)
        if answer is not None:
            answer(session)

    def _at_cert_notice(self, session) -> None:
        self._touch("notice_ok")

    def _at_choose_method(self, session) -> None:
        self._choices += 1
        if self.proxy and not session.proxy:
            self._touch("proxy")
        method = self.method
        if self._choices > 1 and (not self.retry_face or "face" not in session.methods):
            method = self.fallback
        if method not in session.methods:
            method = next((m for m in (self.fallback, "pin", "visual") if m in session.methods), "visual")
        self._touch(f"choose_{method}")

    def _type_pin(self) -> None:
        attempts = self.pin.split(",")
        pin = attempts[min(self._attempt, len(attempts) - 1)]
        self._attempt += 1
        for digit in pin:
            self._touch("pin_digit", digit=int(digit))
        self._touch("pin_submit")

    def _at_pin(self, session) -> None:
        self._type_pin()

    def _at_phone_pin(self, session) -> None:
        self._type_pin()

    def _at_face(self, session) -> None:
        if self.person is not None and (self._watch is None or not self._watch.is_alive()):
            self._watch = threading.Thread(target=self._react, args=(session,), name="patient-face", daemon=True)
            self._watch.start()

    def _at_register(self, session) -> None:
        if session.notice == "registration_refused_expiry":
            self._touch("notice_ok")
        else:
            self._touch("register_yes" if self.register else "register_no")

    def _at_consent(self, session) -> None:
        if self.consent == "items":
            self._touch("consent_choose")
        elif self.consent == "same" and session.context is not None and session.context.previous_consent:
            self._touch("consent_same")
        else:
            self._touch("consent_none" if self.consent == "none" else "consent_all")

    def _at_consent_items(self, session) -> None:
        for item in self.items:
            self._touch("consent_toggle", item=item)
        self._touch("consent_done")

    def _at_prescription(self, session) -> None:
        self._touch(f"prescription_{self.prescription}")

    def _at_more_time(self, session) -> None:
        self._touch("more_time_yes" if self.more_time else "more_time_no")
        self.more_time = False  # once

    # ------------------------------------------------------------------ the face step

    def _react(self, session) -> None:
        """Perform the challenge the face screen shows (once per try)."""
        for _ in range(250):  # the face worker's mailbox appears just after the screen does
            progress = session.face
            if progress is not None or self._stop.wait(0.02):
                break
        reacted = None
        while not self._stop.is_set() and progress is not None and not progress.stop.is_set():
            challenge = progress.snapshot.challenge
            if challenge and challenge != reacted:
                reacted = challenge
                react = getattr(self.person, "react", None)
                if react is not None:
                    react(challenge)
            progress.stop.wait(0.02)
