"""The gate between card-face OCR and a 照合番号B VERIFY: accept only reads that cannot be wrong cheaply.

Why so strict: the 券面事項確認AP allows ten wrong 照合番号B tries in the card's whole life, so an
accepted-but-wrong read costs the holder something real, while a rejected read only costs a PIN entry
or a staff check. The rules are the ones that reached 0 confident-wrong in 4,000 frames
(card-ocr.md):

1. strict format of each line (era, digits without leading zeros, the printed labels), padding
   included: the card pads a one-digit era year, month or day with a space before it, so a decoded
   space is allowed only there (``昭和 55年``, ``昭和5 5年`` and ``昭和55 年`` are rejected), and era
   year 1 must read ``元`` (cards print 元年, never 1年);
2. a real date, inside its era (the era year within the era's range: 昭和 1-64, 平成 1-31, 令和 up to
   today), not in the future;
3. the expiry year within the card programme's range and after the birth date;
4. the expiry month/day equal to the birth month/day (cards expire on a birthday; cards that do not,
   e.g. some foreign residents', are rejected to PIN/staff: there is no cross-check for them);
5. *every* decoded character is confidence-checked: value characters (era, digits, 元) and the
   printed labels (年月日生まで有効) with probability >= ``min_char_prob`` (0.9); the padding space
   either the same way, or — because the model decodes a genuine padding space at only 0.5-0.6 —
   by how likely a digit hides under it: at the steps the space was read, no digit may have
   probability above ``MAX_HIDDEN_DIGIT_PROB`` (0.01; measured on 59 genuine padding spaces of
   rendered cards: at most 0.0012). That is what stops a digit turned into padding (昭和55 read as
   昭和 5). A space from a reader that does not measure it (``hidden_digit_prob`` 1.0) needs 0.9;
6. two consecutive frames give the same 14 digits (:class:`TwoFrameGate`).

Not caught here: greedy CTC decoding can merge two identical adjacent digits into one (昭和55 read as
昭和5 with no space at all), and nothing on the card face cross-checks the era year or the code. The
two-frame rule makes this unlikely; :mod:`firmware.card.collation_ledger` bounds what it can cost
(one try per card at this kiosk).

Rules 1–5 judge one frame (:func:`judge_frame`); rule 6 needs the frame sequence.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
from dataclasses import dataclass

from firmware.card.collation import CollationB
from firmware.card.ocr import era
from firmware.card.ocr.model import FieldRead

log = logging.getLogger(__name__)

MIN_CHAR_PROB = 0.9
MAX_HIDDEN_DIGIT_PROB = 0.01  # a padding space under which a digit is likelier than this is refused
FIRST_EXPIRY_YEAR = 2016  # the card programme started in January 2016
MAX_VALIDITY_YEARS = 11  # 10 birthdays after issue, plus the year of issue

#: Characters each crop may contain (the model's decoding is restricted to these, plus aliases).
ALLOWED_CHARS = {
    "birth": "昭和平成令元0123456789年月日生 ",
    "expiry": "0123456789年月日まで有効 ",
    "code": "0123456789",
}

# Printed numbers never have a leading zero: a one-digit number is padded with one space before it,
# which the model may or may not decode. The space is allowed there and nowhere else.
_NUM = r"(?: ?([1-9])|([1-9][0-9]))"
_ERA_YEAR = r"(?:(元)| ?([2-9])|([1-9][0-9]))"  # year 1 is printed 元
BIRTH_RE = re.compile(rf"(昭和|平成|令和){_ERA_YEAR}年{_NUM}月{_NUM}日生")
EXPIRY_RE = re.compile(rf"(20[0-9]{{2}})年{_NUM}月{_NUM}日まで有効")
CODE_RE = re.compile(r"[0-9]{4}")


class Reject(enum.Enum):
    """Why a frame (or a pair of frames) was not accepted. The kiosk offers PIN or staff for all."""

    NO_CARD = "no card found in the frame"
    FORMAT = "a line does not have the printed format"
    BAD_DATE = "the birth date is not a real date inside its era, or is in the future"
    EXPIRY_RANGE = "the expiry year is outside the card programme's range or not after birth"
    EXPIRY_NOT_BIRTHDAY = "the expiry day is not the birthday (no cross-check possible)"
    LOW_CONFIDENCE = "a character (value, label or padding) was read with probability below the threshold"
    FRAMES_DISAGREE = "two consecutive frames read different numbers"


@dataclass(frozen=True)
class FieldReads:
    """The three crops of one frame, as read by the recogniser."""

    birth: FieldRead
    expiry: FieldRead
    code: FieldRead


@dataclass(frozen=True)
class FrameVerdict:
    """One frame's outcome: the 14 digits if rules 1–5 passed, else the first failed rule."""

    digits: str | None
    reject: Reject | None
    birth_date: dt.date | None = None
    expiry_year: int | None = None
    min_value_prob: float = 0.0  # lowest probability of any decoded character (labels, padding too)
    era: str | None = None

    @property
    def passed(self) -> bool:
        return self.reject is None

    def __repr__(self) -> str:  # the digits are personal data: never in logs or tracebacks
        return f"FrameVerdict(passed={self.passed}, reject={self.reject}, min_value_prob={self.min_value_prob:.3f})"


@dataclass(frozen=True)
class OcrCollationB:
    """照合番号B as accepted by the gate, with the evidence behind it."""

    digits: str  # 14 ASCII digits: era YYMMDD + expiry YYYY + security code
    birth_date: dt.date
    expiry_year: int
    security_code: str
    min_char_prob: float  # lowest value-character probability over the agreeing frames
    frames: int  # frames that agreed (2)
    era: str  # 昭和 / 平成 / 令和, as read

    def as_collation_b(self) -> CollationB:
        """The card layer's :class:`~firmware.card.collation.CollationB`, marked confident (it passed the gate)."""
        return CollationB.from_digits(self.digits, confident=True, era=self.era)

    def __repr__(self) -> str:
        return f"OcrCollationB(<14 digits>, min_char_prob={self.min_char_prob:.3f}, frames={self.frames})"


def _char_confidence(c) -> float:
    """How sure the read is of this character; a padding space may instead be sure no digit is there."""
    if c.char == " " and c.hidden_digit_prob <= MAX_HIDDEN_DIGIT_PROB:
        return max(c.prob, 1.0 - c.hidden_digit_prob)
    return c.prob


def _text_and_lowest(read: FieldRead) -> tuple[str, float]:
    """The decoded text as read (padding spaces kept) and the lowest confidence of *any* character."""
    return read.text, min((_char_confidence(c) for c in read.chars), default=0.0)


def _number(groups: tuple[str | None, ...]) -> int:
    return int(next(g for g in groups if g is not None))


def judge_frame(reads: FieldReads, *, today: dt.date, min_char_prob: float = MIN_CHAR_PROB) -> FrameVerdict:
    """Apply rules 1–5 to one frame's reads."""
    birth_text, birth_p = _text_and_lowest(reads.birth)
    expiry_text, expiry_p = _text_and_lowest(reads.expiry)
    code_text, code_p = _text_and_lowest(reads.code)
    lowest = min(birth_p, expiry_p, code_p)
    birth_m = BIRTH_RE.fullmatch(birth_text)
    expiry_m = EXPIRY_RE.fullmatch(expiry_text)
    if not (birth_m and expiry_m and CODE_RE.fullmatch(code_text)):
        return FrameVerdict(None, Reject.FORMAT, min_value_prob=lowest)
    g = birth_m.groups()  # era, 元, 1-digit year, 2-digit year, month (2 groups), day (2 groups)
    era_name = g[0]
    era_year = 1 if g[1] == "元" else _number(g[2:4])
    b_month, b_day = _number(g[4:6]), _number(g[6:8])
    try:
        birth = era.to_gregorian(era_name, era_year, b_month, b_day)
    except ValueError:
        return FrameVerdict(None, Reject.BAD_DATE, min_value_prob=lowest)
    if birth > today:
        return FrameVerdict(None, Reject.BAD_DATE, min_value_prob=lowest)
    eg = expiry_m.groups()
    e_year, e_month, e_day = int(eg[0]), _number(eg[1:3]), _number(eg[3:5])
    try:
        expiry = dt.date(e_year, e_month, e_day)
    except ValueError:
        return FrameVerdict(None, Reject.BAD_DATE, min_value_prob=lowest)
    if not (FIRST_EXPIRY_YEAR <= e_year <= today.year + MAX_VALIDITY_YEARS) or expiry <= birth:
        return FrameVerdict(None, Reject.EXPIRY_RANGE, min_value_prob=lowest)
    if (e_month, e_day) != (birth.month, birth.day):
        return FrameVerdict(None, Reject.EXPIRY_NOT_BIRTHDAY, min_value_prob=lowest)
    if lowest < min_char_prob:
        return FrameVerdict(None, Reject.LOW_CONFIDENCE, min_value_prob=lowest)
    digits = f"{era.collation_birth_digits(birth)}{e_year:04d}{code_text}"
    return FrameVerdict(digits, None, birth, e_year, lowest, era_name)


class TwoFrameGate:
    """Rule 6: accept only when the last two frames both passed and read the same 14 digits.

    Feed frames in capture order; ``feed`` returns the accepted result or None. A failed frame breaks
    the chain (the next two must agree afresh).
    """

    def __init__(self, required_frames: int = 2):
        if required_frames < 1:
            raise ValueError(f"required_frames must be 1 or more, not {required_frames}")
        self.required_frames = required_frames
        self._chain: list[FrameVerdict] = []
        self.last_reject: Reject | None = None

    def feed(self, verdict: FrameVerdict) -> OcrCollationB | None:
        if not verdict.passed:
            self._chain.clear()
            self.last_reject = verdict.reject
            return None
        if self._chain and self._chain[-1].digits != verdict.digits:
            self._chain = [verdict]
            self.last_reject = Reject.FRAMES_DISAGREE
            return None
        self._chain.append(verdict)
        if len(self._chain) < self.required_frames:
            return None
        agreed = self._chain[-self.required_frames:]
        self._chain.clear()
        self.last_reject = None
        digits = str(verdict.digits)
        return OcrCollationB(
            digits=digits,
            birth_date=verdict.birth_date,  # type: ignore[arg-type]  # set on every passed verdict
            expiry_year=int(verdict.expiry_year or 0),
            security_code=digits[-4:],
            min_char_prob=min(v.min_value_prob for v in agreed),
            frames=len(agreed),
            era=str(verdict.era),
        )
