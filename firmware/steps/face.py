"""The face step: genuineness → card face → 照合番号B → photo read beside the live capture → decision.

Order and why (docs/design.md, "What proves what"): the card camera's frames must pass the OCR gate
before 照合番号B is sent once (an unsure reading spends no try); the photo and the card's
signature over the terminal's challenge are read once per visit (:class:`ChipRead`, on its own
thread) and kept for the retries; each try is one :class:`~firmware.face.session.FaceSession`
with its own liveness challenge, which is wiped when the try ends. The card-face OCR starts at the
tap (:class:`CardFaceRead`), so it overlaps the certificate read and the genuineness proof; the
live capture starts as soon as the card has accepted 照合番号B, so it overlaps the photo read
(about 1.4 s of wire at 115200 baud, longer than the capture). Starting it earlier would slow
the OCR on two cores, and would ask a patient whose card face proves unreadable to perform a
challenge for nothing.

Everything here runs on a worker; progress goes to the screen through the session's
:class:`~firmware.flow.session.FaceProgress` mailbox, the outcome to the flow as an event.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.errors import CollationRefused, FaceError, ReadError
from firmware.flow.session import FaceProgress, FaceSnapshot, Proof
from hal.clock import JST

log = logging.getLogger(__name__)

PREVIEW_WIDTH = 320


class FaceEngine:
    """The face models and the card-face OCR, loaded once per process, used by one check at a time.

    :meth:`shared` gives every kiosk of a process the same engine (tests and the demo start many):
    the models are read-only, and the lock makes face checks take turns.
    """

    _shared: dict[bool, FaceEngine] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, passive_liveness: bool = True) -> FaceEngine:
        with cls._shared_lock:
            engine = cls._shared.get(passive_liveness)
            if engine is None:
                engine = cls._shared[passive_liveness] = cls(passive_liveness)
            return engine

    def __init__(self, passive_liveness: bool = True):
        self.passive_liveness = passive_liveness
        self.lock = threading.Lock()  # TFLite interpreters are not thread-safe: one face check at a time
        self._load_lock = threading.Lock()
        self._pipeline = self._passive = self._ocr = None

    def pipeline(self):
        with self._load_lock:
            if self._pipeline is None:
                from firmware.face.pipeline import FacePipeline

                self._pipeline = FacePipeline()
            return self._pipeline

    def passive(self):
        if not self.passive_liveness:
            return None
        with self._load_lock:
            if self._passive is None:
                from firmware.face.liveness import PassiveLiveness

                self._passive = PassiveLiveness.from_manifest()
            return self._passive

    def ocr(self):
        with self._load_lock:
            if self._ocr is None:
                from firmware.card.ocr.reader import CardFaceReader

                self._ocr = CardFaceReader()
            return self._ocr

    def warm_up(self) -> None:
        """Load everything now (on a worker at start), so the first patient does not wait for it."""
        self.pipeline()
        self.passive()
        self.ocr()

    def checker(self):
        from firmware.face.liveness import LivenessChecker

        passive = self.passive()
        return LivenessChecker(passive, require_passive=passive is not None)


class CardFaceRead:
    """The card camera's frames through the OCR gate, started at the tap on its own thread.

    ``result()`` waits for the outcome: an :class:`~firmware.card.ocr.gate.OcrCollationB`, or it
    raises :class:`CollationRefused` (unsure: no try may be spent). Frames are zeroed as they are read.
    """

    def __init__(self, camera, engine: FaceEngine, max_frames: int):
        self.camera, self.engine, self.max_frames = camera, engine, max_frames
        self._done = threading.Event()
        self._stop = threading.Event()
        self._outcome = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="card-face-ocr", daemon=True)

    def start(self) -> CardFaceRead:
        self.thread.start()
        return self

    def _frames(self):
        for index in range(self.max_frames):
            if self._stop.is_set():
                return
            try:
                self.camera.set_light(index % 2)  # a second lighting moves the glare off a field
            except Exception:
                log.debug("card camera light not switchable")
            yield self.camera.capture()

    def _run(self) -> None:
        from firmware.card.ocr.reader import read_collation_b

        try:
            self._outcome = read_collation_b(self._frames(), self.engine.ocr(), max_frames=self.max_frames)
        except Exception as exc:  # every failure is "unsure": never a try spent on it
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout_s: float):
        if not self._done.wait(timeout_s):
            self._stop.set()
            raise CollationRefused("the card face was not read in time")
        if self._error is not None:
            if isinstance(self._error, CollationRefused):
                raise self._error
            raise CollationRefused(f"the card face could not be read ({type(self._error).__name__})") from self._error
        return self._outcome

    def wipe(self) -> None:
        self._stop.set()
        self._outcome = None  # OcrCollationB holds a str (cannot be zeroed); the reference goes here


@dataclass
class ChipFace:
    """What the chip gave the face path once per visit: the photo (zeroed at the end) and the proof."""

    photo: np.ndarray
    proof: Proof

    def wipe(self) -> None:
        self.photo.fill(0)


def open_chip(card, card_face: CardFaceRead, challenge, issuer_keys, wait_s: float,
              opened=lambda: None) -> ChipFace:
    """The card's signature over ``challenge``, then 照合番号B once (behind the policy), then the photo.

    The genuineness proof needs no 照合番号B, so it goes first: it fills the time the card-face
    OCR (started at the tap) may still need. The card signs the challenge bound to the certificate
    read at this tap (:mod:`firmware.card.genuineness`), which the result carries beside it.

    Raises:
        CollationRefused (no try spent), CollationMismatch / CollationBlocked (the card's answer),
        CardNotGenuine, and the card layer's errors.
    """
    today = dt.datetime.now(JST).date()
    genuine = card.prove_genuine(challenge.nonce, issuer_keys, today)
    reading = card_face.result(wait_s)
    card.verify_collation_b(reading.as_collation_b(), today)
    opened()  # the card accepted 照合番号B: the live capture may start
    photo = card.read_photo()
    proof = Proof(nonce=challenge.nonce, challenge_id=challenge.challenge_id, fresh=challenge.fresh,
                  genuineness=genuine.signature, cvc=genuine.card_certificate.raw)
    return ChipFace(photo, proof)


class ChipRead:
    """:func:`open_chip` on a thread of its own, once per visit, so the live capture runs beside it.

    The face tries of a visit share it: the first starts it, later ones find it done. ``wipe()``
    (the visit is over) zeroes the photo, now or as soon as a read still under way returns.
    """

    def __init__(self, read, name: str = "face-chip"):
        """``read(opened)`` does the chip's part and calls ``opened()`` once 照合番号B is accepted."""
        self._read = read
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._opened = threading.Event()  # 照合番号B accepted, or the read is over (either way: stop waiting)
        self._chip: ChipFace | None = None
        self._error: BaseException | None = None
        self._wiped = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    @classmethod
    def finished(cls, chip: ChipFace) -> ChipRead:
        """A chip read that is already done (evaluation and tests)."""
        read = cls(lambda opened: chip)
        read._run()
        return read

    def start(self) -> ChipRead:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            chip = self._read(self._opened.set)
        except BaseException as exc:  # handed to the face try that waits for it
            with self._lock:
                self._error = exc
        else:
            with self._lock:
                if self._wiped:
                    chip.wipe()
                else:
                    self._chip = chip
        finally:
            self._done.set()
            self._opened.set()

    def poll(self) -> ChipFace | None:
        """The chip's part if it is done (None if not yet); raises what the read raised."""
        if not self._done.is_set():
            return None
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._chip is None:
                raise CollationRefused("the visit is over: the card photo was wiped")
            return self._chip

    def wait(self, timeout_s: float, stop: threading.Event) -> ChipFace | None:
        """Wait for :meth:`poll` to answer; None if ``stop`` is set first. A read past ``timeout_s`` fails."""
        if not self._wait_for(self._done, timeout_s, stop, "the card photo was not read"):
            return None
        return self.poll()

    def wait_opened(self, timeout_s: float, stop: threading.Event) -> bool:
        """Wait until the card has accepted 照合番号B (True), or ``stop`` (False); raises what the read raised.

        Why the live capture waits for this: on two cores the capture slows the card-face OCR that
        照合番号B waits for, while the photo read after it is longer than the capture anyway; and a
        patient whose card face cannot be read is not asked to perform a challenge for nothing.
        """
        if not self._wait_for(self._opened, timeout_s, stop, "照合番号B was not sent"):
            return False
        if self._done.is_set():
            self.poll()  # raises if the read failed (before 照合番号B was accepted, or after)
        return True

    @staticmethod
    def _wait_for(event, timeout_s: float, stop: threading.Event, what: str) -> bool:
        deadline = time.monotonic() + timeout_s
        while not event.wait(0.02):
            if stop.is_set():
                return False
            if time.monotonic() > deadline:
                raise ReadError(f"{what} within {timeout_s:g} s")
        return True

    def wipe(self) -> None:
        with self._lock:
            self._wiped = True
            chip, self._chip = self._chip, None
        if chip is not None:
            chip.wipe()


@dataclass(frozen=True)
class FaceOutcome:
    match: bool
    reason: str  # match / no_match / not_live / no_face / stopped
    score: float | None = None
    threshold: float | None = None
    live: bool | None = None


def _preview(frame: np.ndarray, box) -> tuple[np.ndarray, tuple | None]:
    scale = PREVIEW_WIDTH / frame.shape[1]
    small = cv2.resize(frame, (PREVIEW_WIDTH, int(round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    if box is None:
        return small, None
    x0, y0, x1, y1 = (float(v) * scale for v in box[:4])
    return small, (x0, y0, x1 - x0, y1 - y0)


def capture_and_decide(engine: FaceEngine, camera, chip: ChipRead, progress: FaceProgress,
                       max_frames: int, chip_wait_s: float = 10.0) -> FaceOutcome:
    """One try: a fresh challenge and live frames, beside the chip's photo read; then the decision.

    The capture starts once the card has accepted 照合番号B (:meth:`ChipRead.wait_opened`; at once on
    a retry). The card photo joins the session as soon as ``chip`` has it (between two frames). If
    the live frames are ready first, the screen says the card is still being read and the try waits
    for it. A chip read that fails (照合番号B refused, the card pulled) raises here, ending the try.
    """
    from firmware.face.session import FaceSession

    progress.publish(FaceSnapshot(step="card_face"))
    if not chip.wait_opened(chip_wait_s, progress.stop):
        return FaceOutcome(False, "stopped")
    with engine.lock:
        if progress.stop.is_set():
            return FaceOutcome(False, "stopped")
        with FaceSession(engine.pipeline(), liveness=engine.checker()) as session:
            photo_added = False

            def add_photo(part: ChipFace | None) -> bool:
                if part is not None:  # the session zeroes its copy; ours serves the retries
                    session.add_card_photo(part.photo.copy())
                return part is not None

            challenge = session.start_capture()
            kind = challenge.kind.value if challenge is not None else None
            prompt = challenge.guidance.value if challenge is not None else "look_at_camera"
            progress.publish(FaceSnapshot(step="capture", prompt=prompt, challenge=kind))
            ready = False
            prompts: dict[str, int] = {}
            for _ in range(max_frames):
                if progress.stop.is_set():
                    return FaceOutcome(False, "stopped")
                photo_added = photo_added or add_photo(chip.poll())
                frame = camera.capture()
                feedback = session.add_frame(frame, camera.frame_time_s())
                prompts[feedback.prompt.value] = prompts.get(feedback.prompt.value, 0) + 1
                box = feedback.face.box if feedback.face is not None else None
                preview, preview_box = _preview(frame, box)
                progress.publish(FaceSnapshot(step="capture", prompt=feedback.prompt.value, box=preview_box,
                                              preview=preview, challenge=kind))
                if feedback.ready:
                    ready = True
                    break
            if not ready:
                log.info("face try ended without a decision after %d frames (prompts: %s)", max_frames, prompts)
                return FaceOutcome(False, "no_face")
            if not photo_added:
                progress.publish(FaceSnapshot(step="chip", challenge=kind))
                try:
                    session.prepare()  # the live side of the decision, while the photo is on its way
                except FaceError:
                    return FaceOutcome(False, "no_face")
                part = chip.wait(chip_wait_s, progress.stop)
                if part is None:
                    return FaceOutcome(False, "stopped")
                add_photo(part)
            progress.publish(FaceSnapshot(step="deciding", challenge=kind))
            try:
                decision = session.decide()
            except FaceError:
                return FaceOutcome(False, "no_face")
    return FaceOutcome(decision.match, decision.reason, decision.score, decision.threshold, decision.live)
