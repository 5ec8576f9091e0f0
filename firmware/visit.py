"""The flow's services on a real kiosk: card, PIN and face work on workers, the terminal, announcements.

Every method here is called on the flow thread and returns at once. Work runs on its own named
daemon thread (:mod:`firmware.steps`) and posts its outcome with the token of the state entry that
started it; its time limit is that state's timeout, after which the flow moves on and a late answer
is dropped as stale. A read that hangs in a driver (a ``SCardTransmit`` that never returns)
therefore keeps its thread, but never blocks the next tap, which gets a new thread, nor ``stop()``,
which waits a moment and leaves it.

Per visit, a :class:`VisitWork` keeps the card object (its security state and what was read), the
card-face OCR started at the tap, and the chip's photo and proof for face retries; it is wiped as
soon as the visit's card work is over (done, failed, removed, idle).

Output devices (LED, buzzer, speaker) that fail while running are replaced by their simulation and
reported, like a device missing at start: a broken buzzer must not stop a check-in.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from firmware.bus import Listeners
from firmware.card.collation import CollationPolicy
from firmware.card.mynumber import MyNumberCard
from firmware.config import Config
from firmware.errors import (
    CollationBlocked,
    CollationMismatch,
    CollationRefused,
    FaceError,
    ModelError,
    PinBlocked,
    WrongPin,
)
from firmware.flow.session import CheckInSession, Context, FaceProgress, Token
from firmware.link.schemas import Method, ResultMessage
from firmware.problems import Problems
from firmware.steps import card as card_steps
from firmware.steps.face import CardFaceRead, ChipRead, FaceEngine, capture_and_decide, open_chip
from hal.contracts import BeepPattern, CardLink, StatusColour
from hal.errors import HalError
from hal.registry import open_device

log = logging.getLogger(__name__)

_INDICATION = {
    "idle": (StatusColour.IDLE, None),
    "reading": (StatusColour.BUSY, BeepPattern.TAP),
    "done": (StatusColour.OK, BeepPattern.OK),
    "failed": (StatusColour.ERROR, BeepPattern.ERROR),
    "removed": (StatusColour.ERROR, BeepPattern.ERROR),
    "unusable": (StatusColour.ATTENTION, BeepPattern.ATTENTION),
    "out_of_service": (StatusColour.ERROR, None),
    "face": (StatusColour.BUSY, None),
    "pin_checking": (StatusColour.BUSY, None),
    "checking": (StatusColour.BUSY, None),
    "registering": (StatusColour.BUSY, None),
}
#: States after which the card's work for the visit is over: its VisitWork is wiped.
_CARD_WORK_OVER = ("idle", "done", "failed", "removed", "unusable", "out_of_service")


class Outputs:
    """The LED/buzzer and the speaker, each replaced by its simulation when it fails."""

    def __init__(self, indicators, speaker, problems: Problems):
        self.indicators, self.speaker = indicators, speaker
        self.problems = problems

    def start(self) -> None:
        self.indicators = self._start_or_simulate("indicators", self.indicators)
        self.speaker = self._start_or_simulate("speaker", self.speaker)

    def _start_or_simulate(self, role: str, device):
        try:
            device.start()
            return device
        except HalError as exc:
            log.error("%s %s unavailable, continuing without it: %s", role, device.spec, exc)
            self.problems.set(role, f"{exc}", blocking=False)
            return open_device(role, "sim")

    def indicate(self, state: str) -> None:
        colour, beep = _INDICATION.get(state, (StatusColour.ATTENTION, None))
        try:
            self.indicators.set_status(colour, blink=state == "reading")
            if beep is not None:
                self.indicators.beep(beep)
        except Exception as exc:  # gpiozero raises its own errors; none may stop the visit
            log.exception("indicators %s failed; replaced by the simulation", self.indicators.spec)
            self.problems.set("indicators", f"failed while running ({type(exc).__name__}); simulated now",
                              blocking=False)
            self._close_quietly(self.indicators)
            self.indicators = open_device("indicators", "sim")

    def close(self) -> None:
        for device in (self.indicators, self.speaker):
            self._close_quietly(device)

    @staticmethod
    def _close_quietly(device) -> None:
        try:
            device.close()
        except Exception:
            log.exception("closing %s failed", device.spec)


@dataclass
class VisitWork:
    """The card-side state of one visit, owned by its workers one after another (see module docstring).

    ``lock`` makes them take turns on the card: a patient who types the PIN before the tries-left
    read has answered must not interleave that VERIFY with the real one (the card answers one
    command sequence at a time; interleaved SELECTs would make either fail).
    """

    card: MyNumberCard | None = None
    card_face: CardFaceRead | None = None
    chip: ChipRead | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    over: bool = False
    _fields: threading.Lock = field(default_factory=threading.Lock, repr=False)  # chip / over, never held long

    def chip_read(self, start: Callable[[], ChipRead]) -> ChipRead:
        """The visit's chip read, started by the first face try (a worker); refused once the visit is over."""
        with self._fields:
            if self.over:
                raise CollationRefused("the visit is over")
            if self.chip is None:
                self.chip = start()
            return self.chip

    def wipe(self) -> None:
        with self._fields:
            self.over = True
            card_face, chip = self.card_face, self.chip
            self.card = self.card_face = self.chip = None
        if card_face is not None:
            card_face.wipe()
        if chip is not None:
            chip.wipe()


class KioskServices:
    """:class:`~firmware.flow.checkin.FlowServices` for the kiosk (see the module docstring)."""

    def __init__(self, config: Config, outputs: Outputs, listeners: Listeners,
                 post: Callable[..., object], now: Callable[[], datetime], *,
                 collation_policy: CollationPolicy | None = None, face_camera=None, card_camera=None,
                 engine: FaceEngine | None = None, issuer_keys: dict | None = None):
        self.config = config
        self.outputs = outputs
        self.listeners = listeners
        self.post = post
        self.now = now
        self.collation_policy = collation_policy
        self.face_camera, self.card_camera = face_camera, card_camera
        self.engine = engine or FaceEngine.shared(config.face.passive_liveness)
        self.issuer_keys = issuer_keys or {}
        self.link = None  # set by the kiosk once the link exists (the link needs the flow first)
        self.started = False
        self._jobs: set[threading.Thread] = set()
        self._job_numbers = itertools.count(1)
        self._jobs_lock = threading.Lock()
        self._visits: dict[str, VisitWork] = {}  # flow thread only
        #: Ids of the latest results handed to the link (for scripted runs that wait for their acks).
        self.result_ids: deque[str] = deque(maxlen=10_000)

    # ------------------------------------------------------------------ workers

    def _spawn(self, kind: str, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=f"{kind}-{next(self._job_numbers)}", daemon=True)
        with self._jobs_lock:
            self._jobs = {job for job in self._jobs if job.is_alive()}
            self._jobs.add(thread)
        thread.start()

    def _work(self, session: CheckInSession) -> VisitWork:
        return self._visits.setdefault(session.id, VisitWork())

    def _challenge(self) -> card_steps.Challenge:
        return card_steps.take_challenge(self.link)

    def stop(self, wait_s: float = 5.0) -> None:
        """Wait a moment for work in progress; a read hung in a driver is left behind."""
        for work in self._visits.values():
            work.wipe()
        self._visits.clear()
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.join(wait_s)
            if job.is_alive():
                log.warning("%s is still busy; left behind", job.name)

    # ------------------------------------------------------------------ the card

    def start_card_read(self, session: CheckInSession, link: CardLink | None, token: Token, pin=None) -> None:
        work = self._work(session)
        if work.card is None and link is not None:
            work.card = MyNumberCard(link, collation_policy=self.collation_policy)
        if work.card_face is None and self.card_camera is not None and pin is None:
            # at the tap: the card face is read while the chip is (only a physical card has one)
            work.card_face = CardFaceRead(self.card_camera, self.engine, self.config.face.card_face_frames).start()
            with self._jobs_lock:  # stop() waits for it too: a process must not exit mid-inference
                self._jobs.add(work.card_face.thread)
        self._spawn("card-read", self._read_card, work, token, pin)

    def _read_card(self, work: VisitWork, token: Token, pin) -> None:
        with work.lock:
            self._read_card_locked(work.card, token, pin)

    def _read_card_locked(self, card: MyNumberCard | None, token: Token, pin) -> None:
        try:
            if card is None:
                raise HalError("no card link")
            facts, proof = card_steps.read_tap(card, self.now(), self.config.card.grace_rule, pin, self._challenge)
        except card_steps.PinNeeded:
            self.post("phone_pin_needed", token)
            return
        except WrongPin as exc:
            self.post("pin_wrong", token, tries_left=exc.tries_left)
            return
        except PinBlocked:
            self.post("pin_locked", token)
            return
        except Exception as exc:  # every failure becomes a screen, never a dead thread
            log.info("card read failed: %s", type(exc).__name__)
            phone = card is not None and card._token_kind is not None and not card._token_kind.is_physical_card
            self.post("read_failed", token, error=exc, phone=phone)
            return
        finally:
            if pin is not None:
                pin.wipe()
        self.post("card_read", token, facts=facts, proof=proof)

    def read_pin_tries(self, session: CheckInSession, token: Token) -> None:
        self._spawn("pin-tries", self._pin_tries, self._work(session), token)

    def _pin_tries(self, work: VisitWork, token: Token) -> None:
        try:
            with work.lock:
                tries = card_steps.pin_tries(work.card)
        except PinBlocked:
            self.post("pin_locked", token)
        except Exception as exc:
            self.post("read_failed", token, error=exc)
        else:
            self.post("pin_tries", token, tries_left=tries)

    def start_pin_check(self, session: CheckInSession, pin, token: Token) -> None:
        self._spawn("pin-check", self._pin_check, self._work(session), pin, token)

    def _pin_check(self, work: VisitWork, pin, token: Token) -> None:
        try:
            with work.lock:
                proof = card_steps.check_pin(work.card, pin, self._challenge)
        except WrongPin as exc:
            self.post("pin_wrong", token, tries_left=exc.tries_left)
        except PinBlocked:
            self.post("pin_locked", token)
        except Exception as exc:
            log.info("PIN check failed: %s", type(exc).__name__)
            self.post("read_failed", token, error=exc)
        else:
            self.post("pin_ok", token, proof=proof)
        finally:
            pin.wipe()

    # ------------------------------------------------------------------ the face

    def face_available(self) -> bool:
        """Face matching needs both cameras and a trusted CVC issuer (to check the card is genuine)."""
        return bool(self.issuer_keys) and self.face_camera is not None and self.card_camera is not None

    def start_face(self, session: CheckInSession, token: Token) -> None:
        progress = session.face = FaceProgress()
        self._spawn("face", self._face, self._work(session), progress, token)

    def stop_face(self, session: CheckInSession) -> None:
        if session.face is not None:
            session.face.stop.set()

    def _face(self, work: VisitWork, progress: FaceProgress, token: Token) -> None:
        try:
            if work.card_face is None:
                raise CollationRefused("no card camera: the card face cannot be read")
            chip = work.chip_read(lambda: self._start_chip_read(work))
            outcome = capture_and_decide(self.engine, self.face_camera, chip, progress,
                                         self.config.face.capture_frames, self.config.timeouts.card_read_s)
        except (CollationRefused, CollationMismatch, CollationBlocked, FaceError, ModelError) as exc:
            # no face path for this card now (照合番号B refused or spent, no face in the card photo,
            # models missing): PIN or staff instead
            log.info("face path unavailable: %s", type(exc).__name__)
            self.post("face_unavailable", token, error=exc)
            return
        except Exception as exc:  # the card pulled, not genuine, a camera gone: the visit ends
            log.info("face path failed: %s", type(exc).__name__)
            self.post("read_failed", token, error=exc)
            return
        if outcome.reason == "stopped":
            return
        if outcome.match:
            self.post("face_passed", token, score=outcome.score, threshold=outcome.threshold, live=outcome.live,
                      proof=chip.poll().proof)
        else:
            self.post("face_failed", token, reason=outcome.reason)

    def _start_chip_read(self, work: VisitWork) -> ChipRead:
        """The visit's chip part (genuineness, 照合番号B, photo) on its own thread, taking turns on the card."""
        card, card_face = work.card, work.card_face

        def read(opened):
            with work.lock:
                return open_chip(card, card_face, self._challenge(), self.issuer_keys,
                                 self.config.timeouts.card_read_s, opened)

        chip = ChipRead(read, name=f"face-chip-{next(self._job_numbers)}")
        with self._jobs_lock:  # stop() waits for it like any worker
            self._jobs.add(chip.thread)
        return chip.start()

    # ------------------------------------------------------------------ the terminal

    def request_context(self, session: CheckInSession) -> None:
        request = getattr(self.link, "request_context", None)
        if request is None or session.card is None:
            return
        request(session.id, session.card.cert_der, session.card.token_kind)

    def context_answered(self, session_id: str, answer) -> None:
        """From the link's thread: the terminal's context answer, posted for the visit it names."""
        previous = getattr(answer, "previous_consent", None)
        context = Context(registered=getattr(answer, "registered", None),
                          previous_consent=dict(previous) if previous else None,
                          eligibility=getattr(answer, "eligibility", None))
        self.post("context_received", None, session_id=session_id, context=context)

    def request_registration(self, session: CheckInSession, token: Token) -> None:
        request = getattr(self.link, "request_registration", None)
        if request is None or session.card is None:
            return  # the state's timeout goes on without it
        request(session.id, session.card.cert_der)

    def registration_answered(self, session_id: str, answer) -> None:
        """From the link's thread: the terminal registered the card (or refused, with a reason)."""
        self.post("registration_answer", None, session_id=session_id, ok=bool(getattr(answer, "ok", False)))

    def request_visual(self, session: CheckInSession) -> None:
        self.link.publish_event("visual_wanted", "proxy" if session.proxy else "")

    def call_staff(self, session: CheckInSession) -> None:
        self.link.publish_event("call_staff", "")

    def result_answered(self, result_id: str, ack) -> None:
        """From the link's thread: the terminal acknowledged a result, with its eligibility answer."""
        self.post("answer_received", None, result_id=result_id, eligibility=getattr(ack, "eligibility", None))

    # ------------------------------------------------------------------ results and announcements

    def publish_result(self, session: CheckInSession) -> None:
        result = build_result(self.config, session)
        session.result_id = result.id
        session.terminal_online = bool(getattr(self.link, "connected", True))
        self.link.publish_result(result)
        self.result_ids.append(result.id)
        log.info("result %s handed to the link", result.id)

    def announce(self, state: str, session: CheckInSession) -> None:
        if state in _CARD_WORK_OVER:
            for work in self._visits.values():
                work.wipe()
            self._visits.clear()
        if not self.started:  # the flow's first idle, before devices are up; start() announces again
            return
        self.outputs.indicate(state)
        detail = session.error_kind if state in ("failed", "out_of_service") else ""
        self.link.publish_event(state, detail)
        self.listeners.notify(state, session)


def _b64(value: bytes | None) -> str | None:
    return base64.b64encode(value).decode() if value is not None else None


def build_result(config: Config, session: CheckInSession) -> ResultMessage:
    """The result message of a visit: what was proved and agreed; never a face, a PIN or a number."""
    card, proof = session.card, session.proof
    stamp = session.consent_time
    fields = dict(
        site=config.site_id, reader=config.reader_id, method=Method(session.method),
        card_kind=card.token_kind, cert_der_b64=_b64(card.cert_der), cert_status=card.cert_status,
        proxy=session.proxy, face_score=session.face_score, face_threshold=session.face_threshold,
        face_live=session.face_live, eligibility_only=session.eligibility_only,
        registration=session.registration, prescription=session.prescription,
        consent={key: {"flag": flag, "time": stamp} for key, flag in session.consent.items()},
        consent_carried_over=session.consent_carried_over,
    )
    if proof is not None:
        fields |= dict(nonce_b64=_b64(proof.nonce), challenge_id=proof.challenge_id, fresh=proof.fresh,
                       signature_b64=_b64(proof.signature), genuineness_b64=_b64(proof.genuineness),
                       cvc_b64=_b64(proof.cvc))
    return ResultMessage(**fields)
