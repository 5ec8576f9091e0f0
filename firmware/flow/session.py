"""What one check-in knows, and how it is forgotten.

A session lives from a card tap to the return to idle. ``wipe()`` zeroes every buffer that could
hold a face (frames, the card photo) in place — callers that kept a view see zeros — and drops the
certificate, so nothing of the patient outlives the visit in memory.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CardFacts:
    """What the card layer read: enough for the result message and the screens, no personal data."""

    token_kind: str  # firmware.card.jpki.TokenKind value: card | face-only | android | iphone
    cert_der: bytes
    cert_status: str  # valid | expiring | grace | unusable
    subject: str = ""
    not_after: str = ""


@dataclass
class CheckInSession:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    language: str = "ja"
    proxy: bool = False
    card: CardFacts | None = None
    method: str = "none"
    error_kind: str = ""  # class name of the error that ended the check-in, for the screen
    error_lineage: tuple[str, ...] = ()  # that class and its bases, most specific first
    face_score: float | None = None
    face_threshold: float | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    buffers: list[np.ndarray] = field(default_factory=list)

    def hold(self, buffer: np.ndarray) -> np.ndarray:
        """Register a frame or photo so :meth:`wipe` zeroes it; returns it for chaining."""
        self.buffers.append(buffer)
        return buffer

    def wipe(self) -> None:
        """Zero every held buffer in place and forget everything read from the card."""
        for buffer in self.buffers:
            if buffer.flags.writeable:
                buffer.fill(0)
        self.buffers.clear()
        self.card = None
        self.face_score = self.face_threshold = None
        self.consent = {}
        self.error_kind, self.error_lineage = "", ()
