"""Wiring: config + HAL + flow + link. ``Kiosk`` is what ``uketsuke run`` starts.

The kiosk owns the devices and the link; the flow owns the visit. Device callbacks and background
jobs only ``post`` events to the flow; the flow calls back through :class:`FlowServices` methods
implemented here. Screens observe :meth:`Kiosk.view` and post user events the same way.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from statemachine.exceptions import TransitionNotAllowed

from firmware.card.summary import read_card_facts
from firmware.config import Config
from firmware.errors import LinkError
from firmware.flow.checkin import CheckInFlow
from firmware.flow.session import CheckInSession
from firmware.link.outbox import Outbox
from firmware.link.schemas import CommandName, Method, ResultMessage
from hal.contracts import BeepPattern, CardLink, StatusColour
from hal.errors import HalError
from hal.registry import open_device

log = logging.getLogger(__name__)

SOFTWARE = "uketsuke 0.1.0"

_INDICATION = {
    "idle": (StatusColour.IDLE, None),
    "reading": (StatusColour.BUSY, BeepPattern.TAP),
    "done": (StatusColour.OK, BeepPattern.OK),
    "failed": (StatusColour.ERROR, BeepPattern.ERROR),
    "out_of_service": (StatusColour.ERROR, None),
}


class Kiosk:
    """One reader: devices from the config, the check-in flow, and the link to the terminal."""

    def __init__(self, config: Config, now: Callable[[], datetime] | None = None):
        self.config = config
        self.now = now or (lambda: datetime.now(UTC))
        self.reader = open_device("nfc", config.devices.nfc)
        self.indicators = open_device("indicators", config.devices.indicators)
        self.speaker = open_device("speaker", config.devices.speaker)
        self.outbox = Outbox(config.data_dir / "outbox.sqlite3")
        from firmware.link.mqtt import KioskLink

        self.link = KioskLink(config.site_id, config.reader_id, config.broker, self.outbox,
                              on_command=self.handle_command, software=SOFTWARE)
        self._card_link: CardLink | None = None
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="card-job")
        self._listeners: list[Callable[[str, CheckInSession], None]] = []
        self._lock = threading.Lock()
        #: One line per device problem, for staff (status screen, selftest, event topic).
        self.problems: list[str] = []
        self._started = False
        self.flow = CheckInFlow(self, config.timeouts, config.language)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start devices and the link. Nothing here stops the kiosk: a broker that is down only
        delays results, a missing LED or speaker is replaced by its simulation (and reported), and a
        missing card reader puts the kiosk out of service until the reader is back."""
        self._started = True
        self.indicators = self._start_or_simulate("indicators", self.indicators)
        self.speaker = self._start_or_simulate("speaker", self.speaker)
        self.link.start()
        self.reader.when_card_presented = self._card_presented
        self.reader.when_card_removed = lambda: self.post("card_removed")
        self.reader.when_reader_changed = self._reader_changed
        try:
            self.reader.start()
        except HalError as exc:
            self._reader_changed(exc)
        self.reader.watch()
        self.announce(self.flow.state_id, self.flow.session)

    def _start_or_simulate(self, role: str, device):
        try:
            device.start()
            return device
        except HalError as exc:
            log.error("%s %s unavailable, continuing without it: %s", role, device.spec, exc)
            self.problems.append(f"{role}: {exc}")
            return open_device(role, "sim")

    def _reader_changed(self, error: HalError | None) -> None:
        if error is None:
            log.info("card reader %s is back", self.reader.spec)
            self.problems = [p for p in self.problems if not p.startswith("nfc:")]
            self.post("device_ok")
        else:
            log.error("card reader %s unavailable: %s", self.reader.spec, error)
            self.problems.append(f"nfc: {error}")
            self.post("device_lost", reason=type(error).__name__)

    def stop(self) -> None:
        self.reader.close()
        self._jobs.shutdown(wait=True, cancel_futures=True)
        self.flow.session.wipe()
        try:
            self.link.stop()
        except LinkError as exc:
            log.warning("link did not stop cleanly: %s", exc)
        for device in (self.indicators, self.speaker):
            device.close()
        self.outbox.close()

    # ------------------------------------------------------------------ events in

    def post(self, event: str, **data) -> bool:
        """Send an event to the flow; an event the current state does not take is ignored (logged)."""
        with self._lock:
            try:
                self.flow.send(event, **data)
                return True
            except TransitionNotAllowed:
                log.debug("ignored %s in state %s", event, self.flow.state_id)
                return False

    def _card_presented(self, link: CardLink) -> None:
        self._card_link = link
        self.post("card_presented")

    def add_listener(self, listener: Callable[[str, CheckInSession], None]) -> None:
        """Call ``listener(state, session)`` on every state change (screens, tests)."""
        self._listeners.append(listener)

    def handle_command(self, command) -> dict:
        """A command from the terminal (network thread)."""
        if command.cmd == CommandName.PING:
            return {"state": self.flow.state_id, "pending_results": len(self.outbox)}
        if command.cmd == CommandName.CANCEL:
            return {"cancelled": self.post("cancel")}
        if command.cmd == CommandName.SET_LANGUAGE:
            language = str(command.args.get("language", ""))
            if language not in ("ja", "en", "zh", "ko", "vi", "pt"):
                raise ValueError(f"language must be one of ja, en, zh, ko, vi, pt, not {language!r}")
            self.flow.language = self.flow.session.language = language
            return {"language": language}
        raise ValueError(f"command {command.cmd.value!r} is not available in this version")

    # ------------------------------------------------------------------ FlowServices

    def start_card_read(self, session: CheckInSession) -> None:
        link = self._card_link
        self._jobs.submit(self._read_card, session, link)

    def _read_card(self, session: CheckInSession, link: CardLink | None) -> None:
        try:
            if link is None:
                raise LinkError("no card link")
            facts = read_card_facts(link, self.now())
        except Exception as exc:  # every failure becomes a screen, never a dead thread
            log.info("card read failed: %s", type(exc).__name__)
            self.post("read_failed", error=exc)
            return
        if self.flow.session is not session:  # the visit ended while we were reading
            return
        session.card = facts
        self.post("card_read")

    def publish_result(self, session: CheckInSession) -> None:
        card = session.card
        result = ResultMessage(
            site=self.config.site_id, reader=self.config.reader_id, method=Method(session.method),
            card_kind=card.token_kind, cert_der_b64=base64.b64encode(card.cert_der).decode(),
            cert_status=card.cert_status, consent=session.consent, proxy=session.proxy,
            face_score=session.face_score, face_threshold=session.face_threshold,
        )
        self.link.publish_result(result)
        log.info("result %s queued (%d pending)", result.id, len(self.outbox))

    def announce(self, state: str, session: CheckInSession) -> None:
        if not self._started:  # the flow's first idle, before devices are up; start() announces again
            return
        colour, beep = _INDICATION.get(state, (StatusColour.ATTENTION, None))
        self.indicators.set_status(colour, blink=state == "reading")
        if beep is not None:
            self.indicators.beep(beep)
        detail = session.error_kind if state in ("failed", "out_of_service") else ""
        self.link.publish_event(state, detail)
        for listener in list(self._listeners):
            listener(state, session)
