"""What one check-in knows, and how it is forgotten.

A session lives from a card tap to the return to idle. ``wipe()`` zeroes every buffer that could
hold a face (frames, the card photo) or a secret (PIN digits, 照合番号B) in place — callers that
kept a view see zeros — and drops the certificate, so nothing of the patient outlives the visit in
memory.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from firmware.card.summary import CardFacts
from firmware.secrets import SecretBuffer

__all__ = ["CardFacts", "CheckInSession", "Token"]

PIN_DIGITS = 4  # the JPKI user-authentication PIN
COLLATION_B_DIGITS = 14  # birth date (era YYMMDD) + expiry year + security code


class Token(NamedTuple):
    """Which visit, and which entry into a state of it, an event belongs to.

    Work started in a state (a card read, a timeout, a screen's button) carries the token of that
    state entry; the flow thread drops it if the visit or the state has moved on since.
    """

    session: str
    entry: int


@dataclass
class CheckInSession:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    language: str = "ja"
    tap: int | None = None  # the card presentation this visit belongs to (the reader's tap count)
    proxy: bool = False
    card: CardFacts | None = None
    method: str = "none"
    error_kind: str = ""  # class name of the error that ended the check-in, for the screen
    error_lineage: tuple[str, ...] = ()  # that class and its bases, most specific first
    face_score: float | None = None
    face_threshold: float | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    buffers: list[np.ndarray] = field(default_factory=list)
    pin: SecretBuffer = field(default_factory=lambda: SecretBuffer(PIN_DIGITS), repr=False)
    collation_b: SecretBuffer = field(default_factory=lambda: SecretBuffer(COLLATION_B_DIGITS), repr=False)

    def hold(self, buffer: np.ndarray) -> np.ndarray:
        """Register a frame or photo so :meth:`wipe` zeroes it; returns it for chaining."""
        self.buffers.append(buffer)
        return buffer

    def wipe(self) -> None:
        """Zero every held buffer and secret in place and forget everything read from the card."""
        for buffer in self.buffers:
            if buffer.flags.writeable:
                buffer.fill(0)
        self.buffers.clear()
        self.pin.wipe()
        self.collation_b.wipe()
        self.card = None
        self.face_score = self.face_threshold = None
        self.consent = {}
        self.error_kind, self.error_lineage = "", ()
