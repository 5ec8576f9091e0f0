"""The one state machine of a check-in (python-statemachine, declared once, checked when built).

A tap starts its own path at once (the token kind decides, no choice first): a physical card goes
through the certificate's status, the choice of method (face, PIN, staff), the terminal's context
(registered? previous consent?), registration, consent and the prescription choice to ``done``; a
phone proves itself while it is held (iPhone: Face ID on the phone; Android: the smartphone PIN
typed here) and then takes the same consent path. docs/notes/checkin-contract.md has the table of
states; docs/design.md the picture.

The machine knows no hardware and does no I/O: it calls a :class:`FlowServices` object (the
kiosk's wiring) for work, and that work reports back by posting events to the
:class:`~firmware.flow.runner.FlowRunner`, the one thread that drives this machine. Timeouts are
declared here per state (:attr:`CheckInFlow.TIMEOUTS`) and scheduled by that thread, not by
``invoke`` threads (departure from STYLE.md §6, recorded in docs/design.md). A state that waits
for the patient asks "do you need more time?" before it gives up; every way back to idle wipes the
session.

PIN digits never travel as event data (python-statemachine keeps an event's arguments): screens
call :meth:`CheckInFlow.type_digit` on the flow thread, which appends to the session's
:class:`~firmware.secrets.SecretBuffer`.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Protocol

from statemachine import State, StateMachine

from firmware.card.certificate import CertStatus
from firmware.config import Config, Timeouts
from firmware.consent import NO, YES, ConsentPolicy, load_policy
from firmware.flow.session import CheckInSession, Context, Proof, Token
from hal.contracts import CardLink
from hal.errors import LinkTimeout

log = logging.getLogger(__name__)

#: Registration for insurance use is refused this close to the certificate's end (seed 001 Q18).
REGISTRATION_REFUSED_WITHIN = dt.timedelta(days=5)


class FlowServices(Protocol):
    """What the machine asks of the kiosk. Each call returns at once; long work posts an event later."""

    def start_card_read(self, session: CheckInSession, link: CardLink, token: Token, pin=None) -> None:
        """Read token kind and certificate on a worker; a phone also signs a challenge (Android with
        ``pin``, a :class:`SecretBuffer` the worker wipes). Posts ``card_read(facts=…, proof=…)``,
        ``phone_pin_needed``, ``pin_wrong``/``pin_locked`` (Android) or ``read_failed(error=…)``."""

    def start_face(self, session: CheckInSession, token: Token) -> None:
        """Card face → 照合番号B → photo + genuineness → live capture → decision; posts ``face_passed``,
        ``face_failed(reason=…)`` (a try spent) or ``face_unavailable(error=…)`` (no try spent)."""

    def stop_face(self, session: CheckInSession) -> None:
        """Stop the face worker of this session (leaving the face state)."""

    def read_pin_tries(self, session: CheckInSession, token: Token) -> None:
        """Post ``pin_tries(tries_left=…)`` or ``pin_locked``, spending no try."""

    def start_pin_check(self, session: CheckInSession, pin, token: Token) -> None:
        """VERIFY ``pin`` once and sign a challenge; posts ``pin_ok(proof=…)``, ``pin_wrong`` or ``pin_locked``."""

    def face_available(self) -> bool:
        """Whether this kiosk can match faces at all (cameras, trusted card issuers)."""

    def request_context(self, session: CheckInSession) -> None:
        """Ask the terminal about this certificate; the answer is posted as ``context_received``
        (``session_id``, ``context``)."""

    def request_registration(self, session: CheckInSession, token: Token) -> None:
        """Ask the terminal to register the card; posts ``registration_answer(ok=…)``."""

    def request_visual(self, session: CheckInSession) -> None:
        """Tell staff a 目視確認 is wanted at this reader."""

    def call_staff(self, session: CheckInSession) -> None:
        """The patient pressed 職員を呼ぶ."""

    def publish_result(self, session: CheckInSession) -> None:
        """Hand the result to the link (it stores it durably and sends it; never blocks on I/O)."""

    def announce(self, state: str, session: CheckInSession) -> None:
        """Tell the screen, LED, buzzer, speaker and staff what state the visit is in."""


def _asked_in(state: str):
    """The condition of "more time? — yes" going back to ``state``: the state whose timeout asked."""

    def asked_there(machine, **_) -> bool:
        return machine.session.more_time_for == state

    asked_there.__name__ = f"asked_in_{state}"
    return asked_there


class CheckInFlow(StateMachine):
    idle = State(initial=True, enter="enter_idle")
    phone_help = State(enter="enter_plain")
    reading = State(enter="enter_reading")
    phone_pin = State(enter="enter_phone_pin")
    phone_hold = State(enter="enter_plain")
    cert_notice = State(enter="enter_plain")
    unusable = State(enter="enter_unusable")
    choose_method = State(enter="enter_plain")
    face = State(enter="enter_face", exit="exit_face")
    pin = State(enter="enter_pin")
    pin_checking = State(enter="enter_pin_checking")
    visual = State(enter="enter_visual")
    checking = State(enter="enter_checking")
    register = State(enter="enter_plain")
    registering = State(enter="enter_registering")
    consent = State(enter="enter_plain")
    consent_items = State(enter="enter_consent_items")
    prescription = State(enter="enter_plain")
    done = State(enter="enter_done")
    removed = State(enter="enter_removed")
    more_time = State(enter="enter_plain")
    failed = State(enter="enter_failed")
    out_of_service = State(enter="enter_out_of_service")  # a blocking problem; back when it clears

    # ---- a tap
    card_presented = (idle.to(reading) | phone_help.to(reading)
                      | phone_hold.to(reading, on="keep_phone_link"))
    show_phone_help = idle.to(phone_help)
    back = phone_help.to(idle)
    card_read = (reading.to(unusable, cond="certificate_unusable", on="keep_card_facts")
                 | reading.to(cert_notice, cond="certificate_needs_notice", on="keep_card_facts")
                 | reading.to(checking, cond="read_a_phone", on="keep_card_facts")
                 | reading.to(choose_method, on="keep_card_facts"))
    phone_pin_needed = reading.to(phone_pin)
    read_failed = (reading.to(failed) | face.to(failed) | pin_checking.to(failed) | phone_hold.to(failed))
    notice_ok = (cert_notice.to(checking, cond="read_a_phone") | cert_notice.to(choose_method)
                 | register.to(consent, cond="consent_asked") | register.to(done))

    # ---- the method
    choose_face = choose_method.to(face, cond="face_offered")
    choose_pin = choose_method.to(pin, cond="pin_offered")
    choose_visual = choose_method.to(visual)
    proxy = choose_method.to.itself(internal=True, on="toggle_proxy")
    visual_requested = (choose_method.to(visual) | face.to(visual) | pin.to(visual) | more_time.to(visual))
    face_passed = face.to(checking, on="keep_face_pass")
    face_failed = face.to(choose_method, on="count_face_failure")
    face_unavailable = face.to(choose_method, on="drop_face")
    pin_tries = pin.to.itself(internal=True, on="keep_pin_tries")
    pin_submit = (pin.to(pin_checking, cond="pin_complete")
                  | phone_pin.to(reading, cond=["pin_complete", "phone_still_here"])
                  | phone_pin.to(phone_hold, cond="pin_complete"))
    pin_ok = pin_checking.to(checking, on="keep_pin_pass")
    pin_wrong = pin_checking.to(pin, on="keep_pin_wrong") | reading.to(phone_pin, on="keep_pin_wrong")
    pin_locked = (pin_checking.to(choose_method, on="drop_pin") | pin.to(choose_method, on="drop_pin")
                  | reading.to(failed, on="phone_pin_locked"))
    visual_ok = visual.to(checking, on="keep_visual_pass")
    visual_ng = visual.to(failed, on="visual_refused")

    # ---- the terminal, registration, consent
    context_received = (checking.to(register, cond=["context_is_this_visits", "registration_needed"],
                                    on=["keep_context", "prepare_registration"])
                        | checking.to(consent, cond=["context_is_this_visits", "consent_asked"], on="keep_context")
                        | checking.to(done, cond="context_is_this_visits", on="keep_context"))
    for _state in (reading, phone_pin, phone_hold, cert_notice, choose_method, face, pin, pin_checking,
                   visual, more_time):
        context_received |= _state.to.itself(internal=True, cond="context_is_this_visits", on="keep_context")
    del _state
    call_staff = (idle.to.itself(internal=True, on="ask_for_staff")
                  | choose_method.to.itself(internal=True, on="ask_for_staff")
                  | unusable.to.itself(internal=True, on="ask_for_staff")
                  | failed.to.itself(internal=True, on="ask_for_staff")
                  | done.to.itself(internal=True, on="ask_for_staff"))
    register_yes = (register.to(registering, cond="registration_allowed"))
    register_no = (register.to(consent, cond="consent_asked") | register.to(done))
    registration_answer = (registering.to(consent, cond=["context_is_this_visits", "consent_asked"],
                                          on="keep_registration")
                           | registering.to(done, cond="context_is_this_visits", on="keep_registration"))
    consent_all = consent.to(prescription, cond="prescription_asked", on="consent_to_all") | consent.to(
        done, on="consent_to_all")
    consent_same = (consent.to(prescription, cond=["previous_consent", "prescription_asked"], on="consent_as_before")
                    | consent.to(done, cond="previous_consent", on="consent_as_before"))
    consent_none = consent.to(prescription, cond="prescription_asked", on="consent_to_none") | consent.to(
        done, on="consent_to_none")
    consent_choose = consent.to(consent_items)
    consent_toggle = consent_items.to.itself(internal=True, on="toggle_item")
    consent_done = (consent_items.to(prescription, cond="prescription_asked", on="stamp_consent")
                    | consent_items.to(done, on="stamp_consent"))
    prescription_electronic = prescription.to(done, on="prescribe_electronic")
    prescription_paper = prescription.to(done, on="prescribe_paper")
    answer_received = done.to.itself(internal=True, cond="answer_is_this_visits", on="keep_answer")

    # ---- time, removal, faults
    #: Every state a visit can be in, and those that ask the patient something (their timeout first
    #: asks "more time?", and "yes" goes back to the state that asked).
    _visit = (phone_help, reading, phone_pin, phone_hold, cert_notice, unusable, choose_method, face, pin,
              pin_checking, visual, checking, register, registering, consent, consent_items, prescription,
              done, removed, more_time, failed)
    _asking = {"phone_pin": phone_pin, "cert_notice": cert_notice, "choose_method": choose_method, "face": face,
               "pin": pin, "register": register, "consent": consent, "consent_items": consent_items,
               "prescription": prescription}
    expired = (reading.to(failed) | pin_checking.to(failed) | registering.to(consent, cond="consent_asked")
               | registering.to(done) | checking.to(register, cond="registration_needed", on="prepare_registration")
               | checking.to(consent, cond="consent_asked") | checking.to(done)
               | visual.to(failed)
               | more_time.to(idle) | phone_help.to(idle) | phone_hold.to(idle) | unusable.to(idle)
               | removed.to(idle) | done.to(idle) | failed.to(idle))
    more_time_yes = None
    for _name, _state in _asking.items():
        expired |= _state.to(more_time, on="remember_asking")
        _back = more_time.to(_state, cond=_asked_in(_name))
        more_time_yes = _back if more_time_yes is None else more_time_yes | _back
    more_time_no = more_time.to(idle)
    #: A card removed: before the result, the visit is over (shown as "removed"); a phone may go
    #: once it has proved itself (it is held, not placed) and while its PIN is typed.
    card_removed = (phone_pin.to.itself(internal=True, cond="removed_card_is_this_visits", on="phone_left")
                    | done.to(idle, cond="removed_card_is_this_visits")
                    | failed.to(idle, cond="removed_card_is_this_visits")
                    | unusable.to(idle, cond="removed_card_is_this_visits")
                    | phone_hold.to.itself(internal=True, cond="removed_card_is_this_visits"))
    for _state in (reading, choose_method, face, pin, pin_checking):  # a card's states: the card is read here
        card_removed |= _state.to(removed, cond="removed_card_is_this_visits")
    for _state in (cert_notice, visual, checking, register, registering, consent, consent_items, prescription,
                   more_time):  # states a proved phone may also be in
        card_removed |= _state.to(removed, cond=["removed_card_is_this_visits", "card_still_needed"])
    cancel = phone_help.to(idle)
    #: A callback raised: the visit cannot go on. Staff see the fault; the patient sees "ask staff".
    fault = failed.to(idle) | out_of_service.to(idle) | idle.to(failed)
    device_lost = idle.to(out_of_service)
    for _state in _visit:
        if _state is not phone_help:
            cancel |= _state.to(idle)
        if _state is not failed:
            fault |= _state.to(failed)
        device_lost |= _state.to(out_of_service)
    del _visit, _asking, _name, _state, _back
    device_ok = out_of_service.to(idle)

    #: state → the ``[timeouts]`` setting after which the runner posts ``expired`` (states not listed wait).
    TIMEOUTS = {"phone_help": "notice_s", "reading": "card_read_s", "phone_pin": "pin_s", "phone_hold": "notice_s",
                "cert_notice": "notice_s", "unusable": "error_s", "choose_method": "method_choice_s",
                "face": "face_s", "pin": "pin_s", "pin_checking": "pin_check_s", "visual": "visual_s",
                "checking": "context_s", "register": "consent_s", "registering": "registration_s",
                "consent": "consent_s", "consent_items": "consent_s", "prescription": "consent_s",
                "done": "done_s", "removed": "removed_s", "more_time": "more_time_s", "failed": "error_s"}

    def __init__(self, services: FlowServices, config: Config | Timeouts | None = None, language: str | None = None,
                 policy: ConsentPolicy | None = None, now=None):
        self.services = services
        if isinstance(config, Timeouts):  # tests of timing: everything else at its default
            config = Config(timeouts=config)
        self.config = config or Config()
        self.timeouts = self.config.timeouts
        self.language = language or self.config.language
        self.policy = policy or load_policy(self.config.consent.policy)
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self._shuffle = random.SystemRandom()
        self.session = self._new_session()
        #: Counts state entries; with the session id it makes the :class:`Token` of the current entry.
        self.entry = 0
        super().__init__()

    @property
    def state_id(self) -> str:
        return self.current_state_value

    @property
    def token(self) -> Token:
        return Token(self.session.id, self.entry)

    def timeout_s(self) -> float | None:
        """How long the current state waits, or None."""
        setting = self.TIMEOUTS.get(self.state_id)
        return getattr(self.timeouts, setting) if setting else None

    def _new_session(self) -> CheckInSession:
        session = CheckInSession(language=self.language, face_tries_left=self.config.face.max_tries)
        if self.config.pin.shuffle_keys:
            keys = list(range(10))
            self._shuffle.shuffle(keys)
            session.pin_keys = tuple(keys)
        return session

    # ------------------------------------------------------------------ from screens (flow thread)

    def type_digit(self, digit: int, token: Token | None = None) -> bool:
        """A keypad digit (PIN or smartphone PIN). The digit is never an event argument or logged."""
        if (token is not None and token != self.token) or self.state_id not in ("pin", "phone_pin"):
            return False
        if self.session.pin.full:
            return False
        self.session.pin.append_digit(digit)
        self.session.notice = ""
        return True

    def delete_digit(self, token: Token | None = None) -> bool:
        if (token is not None and token != self.token) or self.state_id not in ("pin", "phone_pin"):
            return False
        self.session.pin.backspace()
        return True

    # ------------------------------------------------------------------ conditions

    def removed_card_is_this_visits(self, tap: int | None = None, **_) -> bool:
        """A removal belongs to this visit only if it is the removal of the card that started it."""
        return tap is None or tap == self.session.tap

    def card_still_needed(self, **_) -> bool:
        """A phone that proved itself may leave; a card stays until the result is sent."""
        return not (self.session.is_phone and self.session.proof is not None)

    def certificate_unusable(self, facts=None, **_) -> bool:
        return facts is not None and facts.cert_status == CertStatus.UNUSABLE.value

    def certificate_needs_notice(self, facts=None, **_) -> bool:
        return facts is not None and facts.cert_status in (CertStatus.EXPIRING.value, CertStatus.GRACE.value)

    def read_a_phone(self, facts=None, **_) -> bool:
        card = facts if facts is not None else self.session.card
        return card is not None and card.token_kind in ("android", "iphone")

    def face_offered(self, **_) -> bool:
        return "face" in self.session.methods

    def pin_offered(self, **_) -> bool:
        return "pin" in self.session.methods

    def pin_complete(self, **_) -> bool:
        return self.session.pin.full

    def phone_still_here(self, **_) -> bool:
        return self.session.link is not None

    def context_is_this_visits(self, session_id: str = "", **_) -> bool:
        return session_id == self.session.id

    def answer_is_this_visits(self, result_id: str = "", **_) -> bool:
        return result_id is not None and result_id == self.session.result_id

    def registration_needed(self, context: Context | None = None, **_) -> bool:
        context = context or self.session.context
        return context is not None and context.registered is False

    def registration_allowed(self, **_) -> bool:
        return not self.registration_refused_for_expiry()

    def registration_refused_for_expiry(self) -> bool:
        card = self.session.card
        if card is None or not card.not_after:
            return True
        return dt.datetime.fromisoformat(card.not_after) - self.now() < REGISTRATION_REFUSED_WITHIN

    def consent_asked(self, **_) -> bool:
        return not self.session.eligibility_only

    def prescription_asked(self, **_) -> bool:
        return self.policy.prescription_choice

    def previous_consent(self, **_) -> bool:
        context = self.session.context
        return context is not None and bool(context.previous_consent)

    # ------------------------------------------------------------------ transition actions

    def keep_context(self, context: Context | None = None, **_) -> None:
        self.session.context = context

    def prepare_registration(self, **_) -> None:
        if self.registration_refused_for_expiry():
            self.session.notice = "registration_refused_expiry"

    def ask_for_staff(self, **_) -> None:
        self.services.call_staff(self.session)

    def keep_phone_link(self, link=None, tap=None, **_) -> None:
        self.session.link, self.session.tap = link, tap

    def keep_card_facts(self, facts=None, proof: Proof | None = None, **_) -> None:
        session = self.session
        session.card = facts
        session.eligibility_only = facts.cert_status == CertStatus.GRACE.value
        if facts.cert_status == CertStatus.UNUSABLE.value:
            session.notice = "phone_expired" if self.read_a_phone(facts) else "card_unusable"
        elif facts.cert_status == CertStatus.EXPIRING.value:
            session.notice = "renewal_alert"
        elif facts.cert_status == CertStatus.GRACE.value:
            session.notice = "grace_eligibility_only"
        if proof is not None:  # a phone: the signature over the challenge is its identity proof
            session.proof = proof
            session.method = "smartphone"
        session.pin.wipe()  # the smartphone PIN has done its work
        self._offer()
        if not self.read_a_phone(facts) or proof is not None:
            if facts.cert_status != CertStatus.UNUSABLE.value:
                self.services.request_context(session)

    def _methods_for(self, kind: str) -> tuple[str, ...]:
        methods = ("face", "visual") if kind == "face-only" else ("face", "pin", "visual")
        if not self.services.face_available():
            methods = tuple(m for m in methods if m != "face")
        return methods

    def _offer(self, rule_out: str | None = None) -> None:
        """The method screen's choices: the token's methods, less those ruled out, less face for a proxy."""
        session = self.session
        if rule_out is not None:
            session.ruled_out = session.ruled_out | {rule_out}
        kind = session.card.token_kind if session.card else "card"
        session.methods = tuple(m for m in self._methods_for(kind)
                                if m not in session.ruled_out and not (session.proxy and m == "face"))

    def toggle_proxy(self, **_) -> None:
        """代理の方が操作: a helper operates. Face matching is the holder's own, so it is not offered."""
        self.session.proxy = not self.session.proxy
        self._offer()

    def keep_face_pass(self, score: float | None = None, threshold: float | None = None, live=None,
                       proof: Proof | None = None, **_) -> None:
        session = self.session
        session.method = "face"
        session.face_score, session.face_threshold, session.face_live = score, threshold, live
        session.proof = proof

    def count_face_failure(self, reason: str = "no_match", **_) -> None:
        session = self.session
        session.face_tries_left -= 1
        if session.face_tries_left <= 0:
            self._offer(rule_out="face")
            session.notice = "face_tries_used"
        else:
            session.notice = "face_not_live" if reason == "not_live" else "face_no_match"

    def drop_face(self, error: BaseException | None = None, **_) -> None:
        """The face path cannot be used for this card now (unsure card face, 照合番号B refused…)."""
        self._offer(rule_out="face")
        self.session.notice = type(error).__name__ if error is not None else "face_unavailable"

    def keep_pin_tries(self, tries_left: int | None = None, **_) -> None:
        self.session.pin_tries_left = tries_left

    def keep_pin_pass(self, proof: Proof | None = None, **_) -> None:
        self.session.method = "pin"
        self.session.proof = proof
        self.session.pin.wipe()

    def keep_pin_wrong(self, tries_left: int | None = None, **_) -> None:
        self.session.pin.wipe()
        self.session.pin_tries_left = tries_left
        self.session.notice = "pin_wrong"

    def drop_pin(self, **_) -> None:
        session = self.session
        session.pin.wipe()
        session.pin_tries_left = 0
        self._offer(rule_out="pin")
        session.notice = "pin_locked"

    def phone_pin_locked(self, **_) -> None:
        self.session.pin.wipe()
        self.session.error_kind = "PinBlocked"
        self.session.error_lineage = ("PhonePinBlocked", "PinBlocked")

    def phone_left(self, **_) -> None:
        self.session.link = None

    def keep_visual_pass(self, **_) -> None:
        self.session.method = "visual"

    def visual_refused(self, **_) -> None:
        self.session.error_kind = "VisualRefused"
        self.session.error_lineage = ("VisualRefused",)

    def keep_registration(self, ok: bool | None = None, **_) -> None:
        self.session.registration = bool(ok) if ok is not None else None
        if not ok:
            self.session.notice = "registration_failed"

    def _consent(self, flags: dict[str, int]) -> None:
        self.session.consent = flags
        self.session.consent_time = self.now()

    def consent_to_all(self, **_) -> None:
        self._consent(self.policy.all(YES))

    def consent_to_none(self, **_) -> None:
        self._consent(self.policy.all(NO))

    def consent_as_before(self, **_) -> None:
        """前回と同じ: the previous answers at this institution, as the terminal gave them."""
        previous = self.session.context.previous_consent or {}
        self._consent({key: int(previous.get(key, NO)) for key in self.policy.keys})
        self.session.consent_carried_over = True

    def toggle_item(self, item: str = "", **_) -> None:
        if item in self.policy.keys:
            self.session.consent[item] = NO if self.session.consent.get(item, NO) == YES else YES

    def stamp_consent(self, **_) -> None:
        self._consent({key: self.session.consent.get(key, NO) for key in self.policy.keys})

    def prescribe_electronic(self, **_) -> None:
        self.session.prescription = "electronic"

    def prescribe_paper(self, **_) -> None:
        self.session.prescription = "paper"

    def keep_answer(self, eligibility: str | None = None, **_) -> None:
        self.session.answer = eligibility

    def remember_asking(self, source=None, **_) -> None:
        self.session.more_time_for = source.id if source is not None else ""

    # ------------------------------------------------------------------ entering states

    def on_enter_state(self, **_) -> None:  # generic hook: runs before the state's own enter_*
        self.entry += 1

    def enter_plain(self, target=None, **_) -> None:
        self.services.announce(target.id if target is not None else self.state_id, self.session)

    def enter_idle(self) -> None:
        if getattr(self, "session", None) is not None:
            self.session.wipe()
            self.session = self._new_session()
        self.services.announce("idle", self.session)

    def enter_reading(self, link: CardLink | None = None, tap: int | None = None, source=None, **_) -> None:
        session = self.session
        pin = None
        if source is not None and source.id in ("phone_pin", "phone_hold"):
            pin = session.pin_copy()  # Android: the worker verifies it, then reads and signs
            session.pin.wipe()
        else:
            session.tap, session.link = tap, link
        self.services.announce("reading", session)
        self.services.start_card_read(session, session.link, self.token, pin)

    def enter_phone_pin(self, source=None, **_) -> None:
        if source is not None and source.id == "reading" and self.session.notice != "pin_wrong":
            self.session.notice = "phone_pin"
        self.services.announce("phone_pin", self.session)

    def enter_unusable(self) -> None:
        self.services.announce("unusable", self.session)

    def enter_face(self) -> None:
        self.session.notice = ""
        self.services.announce("face", self.session)
        self.services.start_face(self.session, self.token)

    def exit_face(self) -> None:
        self.services.stop_face(self.session)

    def enter_pin(self, source=None, **_) -> None:
        self.session.pin.wipe()
        self.services.announce("pin", self.session)
        if self.session.pin_tries_left is None:  # before the first digit: from the card, spending none
            self.services.read_pin_tries(self.session, self.token)

    def enter_pin_checking(self) -> None:
        pin = self.session.pin_copy()
        self.session.pin.wipe()
        self.services.announce("pin_checking", self.session)
        self.services.start_pin_check(self.session, pin, self.token)

    def enter_visual(self) -> None:
        self.services.announce("visual", self.session)
        self.services.request_visual(self.session)

    def enter_checking(self) -> None:
        self.services.announce("checking", self.session)
        if self.session.context is not None:  # it came while the patient was busy: no need to wait
            self.send("context_received", session_id=self.session.id, context=self.session.context)

    def enter_registering(self) -> None:
        self.services.announce("registering", self.session)
        self.services.request_registration(self.session, self.token)

    def enter_consent_items(self) -> None:
        self.session.consent = {key: self.session.consent.get(key, NO) for key in self.policy.keys}
        self.services.announce("consent_items", self.session)

    def enter_done(self) -> None:
        session = self.session
        if session.eligibility_only:
            session.consent, session.prescription = {}, None  # grace: no consent at all
        self.services.publish_result(session)
        self.services.announce("done", session)

    def enter_removed(self) -> None:
        self.session.wipe()
        self.services.announce("removed", self.session)

    def enter_out_of_service(self, reason: str = "", **_) -> None:
        self.session.wipe()
        self.session.error_kind = reason
        self.services.announce("out_of_service", self.session)

    def enter_failed(self, error: BaseException | None = None, phone: bool = False, event=None, source=None,
                     **_) -> None:
        if error is None and str(event) == "expired" and getattr(source, "id", "") in ("reading", "pin_checking"):
            # The card (or a hung reader driver) did not answer in time: for the patient that is a
            # read error ("place it again"), not "the time limit has passed".
            error = LinkTimeout("the card did not answer within its time limit")
        if error is None and str(event) == "expired" and getattr(source, "id", "") == "visual":
            self.session.error_kind, self.session.error_lineage = "VisualTimeout", ("VisualTimeout",)
        if error is not None:
            self.session.error_kind = type(error).__name__
            self.session.error_lineage = tuple(cls.__name__ for cls in type(error).__mro__)
            if phone or self.session.is_phone:  # the rules' fallback: the マイナポータル screen at the counter
                self.session.error_lineage = ("PhoneUnreadable",) + self.session.error_lineage
        elif not self.session.error_kind:
            self.session.error_kind = "Timeout"
        self.session.wipe(keep_error=True)
        self.services.announce("failed", self.session)
