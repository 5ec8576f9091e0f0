"""Card-face OCR for 照合番号B: locate the card, read three fields, gate before any VERIFY.

See :mod:`firmware.card.ocr.gate` for the acceptance rules and docs/notes/card-ocr.md for measurements.
"""

from firmware.card.ocr.gate import FrameVerdict, OcrCollationB, Reject, TwoFrameGate, judge_frame
from firmware.card.ocr.model import ModelError, load_recognizer
from firmware.card.ocr.reader import CardFaceReader, read_collation_b

__all__ = ["CardFaceReader", "FrameVerdict", "ModelError", "OcrCollationB", "Reject", "TwoFrameGate",
           "judge_frame", "load_recognizer", "read_collation_b"]
