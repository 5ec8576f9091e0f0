"""What one check-in knows, and how it is forgotten.

A session lives from a card tap to the return to idle. ``wipe()`` zeroes every buffer that could
hold a face (frames, the card photo, the preview) or a secret (PIN digits, 照合番号B) in place —
callers that kept a view see zeros — and drops the certificate, so nothing of the patient outlives
the visit in memory.

Only the flow thread changes a session. The one exception is :class:`FaceProgress`, a mailbox the
face worker fills with immutable snapshots (step, prompt, preview) for the screen: one attribute
swap per frame, read by the UI thread, owned by nobody else.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy as np

from firmware.card.summary import CardFacts
from firmware.secrets import SecretBuffer

__all__ = ["CardFacts", "CheckInSession", "Context", "FaceProgress", "FaceSnapshot", "Proof", "Token"]

PIN_DIGITS = 4  # the JPKI user-authentication PIN (and the Android smartphone certificate PIN)
COLLATION_B_DIGITS = 14  # birth date (era YYMMDD) + expiry year + security code
PHONE_KINDS = ("android", "iphone")


class Token(NamedTuple):
    """Which visit, and which entry into a state of it, an event belongs to.

    Work started in a state (a card read, a timeout, a screen's button) carries the token of that
    state entry; the flow thread drops it if the visit or the state has moved on since.
    """

    session: str
    entry: int


@dataclass(frozen=True)
class Proof:
    """What the terminal can check: a signature over its challenge, or the card's genuineness.

    ``fresh`` is False when the kiosk had no terminal challenge left and signed a nonce of its own:
    the terminal then treats the freshness of the proof as unverified.
    """

    nonce: bytes
    challenge_id: str | None
    fresh: bool
    signature: bytes | None = None  # JPKI auth key (PIN path, phones)
    genuineness: bytes | None = None  # the 券面AP's card key over the nonce bound to the certificate (face path)
    cvc: bytes | None = None  # the card's CVC (EF 0004), whose key checks ``genuineness``


@dataclass(frozen=True)
class Context:
    """The terminal's answer about this certificate, asked as soon as it is read."""

    registered: bool | None = None  # insurance use registered for this card?
    #: The answers of the previous consent at this institution (ORCA prefix → flag), if one exists (前回と同じ).
    previous_consent: dict[str, int] | None = None
    eligibility: str | None = None  # a hint: valid / invalid / no_record


@dataclass(frozen=True)
class FaceSnapshot:
    """One moment of the face step, for the screen: no personal data except the preview pixels."""

    step: str = "card_face"  # card_face → chip → capture → deciding
    prompt: str = ""  # a guidance key (move_closer, face_forward, blink, turn_left, …)
    box: tuple[float, float, float, float] | None = None  # face box in preview pixels (x, y, w, h)
    preview: np.ndarray | None = None  # small RGB frame; zeroed by the worker and by wipe()
    challenge: str | None = None  # blink / turn_left / turn_right


class FaceProgress:
    """The face worker's mailbox to the screen (see the module docstring), and the worker's stop flag."""

    def __init__(self) -> None:
        self.snapshot = FaceSnapshot()
        self.stop = threading.Event()
        self._previews: list[np.ndarray] = []
        self._lock = threading.Lock()

    def publish(self, snapshot: FaceSnapshot) -> None:
        if snapshot.preview is not None:
            with self._lock:
                if self.stop.is_set():  # wiped already: do not show (or keep) another face
                    snapshot.preview.fill(0)
                    return
                self._previews.append(snapshot.preview)
                # the screen only ever shows the newest; older previews are zeroed at once
                for old in self._previews[:-2]:
                    old.fill(0)
                del self._previews[:-2]
        self.snapshot = snapshot

    def wipe(self) -> None:
        self.stop.set()
        with self._lock:
            for preview in self._previews:
                preview.fill(0)
            self._previews.clear()
        self.snapshot = FaceSnapshot()

    def is_zero(self) -> bool:
        with self._lock:
            return not any(p.any() for p in self._previews)


@dataclass
class CheckInSession:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    language: str = "ja"
    tap: int | None = None  # the card presentation this visit belongs to (the reader's tap count)
    link: object | None = None  # the CardLink of that presentation (None once a phone has left)
    proxy: bool = False
    card: CardFacts | None = None
    method: str = "none"
    methods: tuple[str, ...] = ()  # offered on the method screen: face / pin / visual
    ruled_out: frozenset[str] = frozenset()  # methods this visit has used up (face tries, face unusable, PIN locked)
    notice: str = ""  # a message key the next screen shows (why we are back here, what to do)
    error_kind: str = ""  # class name of the error that ended the check-in, for the screen
    error_lineage: tuple[str, ...] = ()  # that class and its bases, most specific first
    face: FaceProgress | None = None
    face_tries_left: int = 3
    face_score: float | None = None
    face_threshold: float | None = None
    face_live: bool | None = None
    face_ready: bool = False  # 照合番号B verified and the card photo read in this visit
    pin_tries_left: int | None = None
    pin_keys: tuple[int, ...] = tuple(range(10))
    proof: Proof | None = None
    context: Context | None = None
    registration: bool | None = None  # registered for insurance use at this visit
    eligibility_only: bool = False  # grace period: no consent is asked or sent
    consent: dict[str, int] = field(default_factory=dict)  # ORCA prefix → flag (0 no, 1 yes, …)
    consent_time: datetime | None = None
    consent_carried_over: bool = False
    prescription: str | None = None  # electronic / paper
    result_id: str | None = None
    answer: str | None = None  # the terminal's eligibility answer to the result
    terminal_online: bool = True
    more_time_for: str = ""  # the state whose timeout asked "do you need more time?"
    buffers: list[np.ndarray] = field(default_factory=list)
    pin: SecretBuffer = field(default_factory=lambda: SecretBuffer(PIN_DIGITS), repr=False)
    collation_b: SecretBuffer = field(default_factory=lambda: SecretBuffer(COLLATION_B_DIGITS), repr=False)

    @property
    def is_phone(self) -> bool:
        return self.card is not None and self.card.token_kind in PHONE_KINDS

    def hold(self, buffer: np.ndarray) -> np.ndarray:
        """Register a frame or photo so :meth:`wipe` zeroes it; returns it for chaining."""
        self.buffers.append(buffer)
        return buffer

    def pin_copy(self) -> SecretBuffer:
        """A copy of the typed PIN for a worker, which wipes it after its one VERIFY.

        The worker gets its own buffer so that a session wiped meanwhile (a cancel, a timeout)
        cannot turn the digits it is sending into zeros and spend a try on them.
        """
        copy = SecretBuffer(PIN_DIGITS)
        for byte in self.pin.view():
            copy.append_digit(byte - 0x30)
        return copy

    def wipe(self, keep_error: bool = False) -> None:
        """Zero every held buffer and secret in place and forget everything read from the card.

        ``keep_error``: the error that ended the visit stays for the failed screen (no personal data).
        """
        for buffer in self.buffers:
            if buffer.flags.writeable:
                buffer.fill(0)
        self.buffers.clear()
        if self.face is not None:
            self.face.wipe()
        self.pin.wipe()
        self.collation_b.wipe()
        self.card = self.link = self.proof = self.context = None
        self.face_score = self.face_threshold = self.face_live = None
        self.face_ready = False
        self.consent = {}
        if not keep_error:
            self.error_kind, self.error_lineage = "", ()
