"""Card-camera frames in, an accepted 照合番号B (or a refusal) out: the OCR pipeline end to end.

``CardFaceReader.judge`` turns one frame into a :class:`~firmware.card.ocr.gate.FrameVerdict`
(locate, crop, read, rules 1–5); :func:`read_collation_b` feeds frames through the two-frame gate and
raises :class:`~firmware.errors.CollationRefused` when no pair agrees, so the caller can never VERIFY
an unsure number by accident.

Privacy: the crops hold the birth date and the frame holds the holder's photo, so every crop is
zeroed after use, ``read_collation_b`` zeroes each frame it was given once read, and nothing read is
logged (only reject reasons are).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import numpy as np

from firmware.card.ocr.gate import (
    ALLOWED_CHARS,
    MIN_CHAR_PROB,
    FieldReads,
    FrameVerdict,
    OcrCollationB,
    Reject,
    TwoFrameGate,
    judge_frame,
)
from firmware.card.ocr.locate import cut_field_crops
from firmware.card.ocr.model import Recognizer, load_recognizer
from firmware.errors import CollationRefused

log = logging.getLogger(__name__)


class CardFaceReader:
    """Reads the three 照合番号B fields from card-camera frames with one loaded recogniser."""

    def __init__(self, recognizer: Recognizer | None = None, *, min_char_prob: float = MIN_CHAR_PROB,
                 today: dt.date | None = None):
        self.recognizer = recognizer or load_recognizer()
        self.min_char_prob = min_char_prob
        self.today = today

    def read_fields(self, frame_rgb: np.ndarray) -> FieldReads | None:
        """Locate the card and read its three crops; None when no card is in the frame."""
        crops = cut_field_crops(frame_rgb)
        if crops is None:
            return None
        try:
            reads = {name: self.recognizer.read(crop, ALLOWED_CHARS[name]) for name, crop in crops.items()}
        finally:
            for crop in crops.values():
                crop.fill(0)
        return FieldReads(**reads)

    def judge(self, frame_rgb: np.ndarray) -> FrameVerdict:
        """One frame through rules 1–5 of the gate."""
        reads = self.read_fields(frame_rgb)
        if reads is None:
            return FrameVerdict(None, Reject.NO_CARD)
        verdict = judge_frame(reads, today=self.today or dt.date.today(), min_char_prob=self.min_char_prob)
        if not verdict.passed:
            log.debug("frame rejected: %s", verdict.reject.value if verdict.reject else "")
        return verdict


def read_collation_b(frames: Iterable[np.ndarray], reader: CardFaceReader | None = None, *,
                     max_frames: int = 8, zero_frames: bool = True) -> OcrCollationB:
    """Read frames (ideally lit differently in turn) until two consecutive ones agree.

    Raises:
        CollationRefused: ``max_frames`` frames gave no agreeing pair; the message names the last reason.
    """
    reader = reader or CardFaceReader()
    gate = TwoFrameGate()
    used = 0
    for frame in frames:
        if used >= max_frames:
            break
        used += 1
        try:
            accepted = gate.feed(reader.judge(frame))
        finally:
            if zero_frames:
                frame.fill(0)
        if accepted is not None:
            return accepted
    reason = gate.last_reject.value if gate.last_reject else "no frames"
    raise CollationRefused(f"card-face OCR not confident after {used} frames ({reason}); "
                           "offer PIN entry or a staff check instead of 照合番号B")
