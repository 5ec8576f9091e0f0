"""照合番号B: what the card-face OCR hands over, and the policy that decides whether to spend a try.

The 券面事項確認AP's 照合番号B counter has 10 tries for the card's whole life and only the
municipality resets it. So the kiosk sends a 照合番号B only when the OCR result is complete,
self-consistent and confident, the card has lost no try to this kiosk before (the
:mod:`~firmware.card.collation_ledger`), and the card's counter is at least
``card.min_collation_tries_left`` (default 6, so a try the kiosk loses still leaves 5). The OCR
(``firmware/card/ocr/``) produces a :class:`CollationB`; :class:`CollationPolicy` consumes it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from firmware.card.collation_ledger import CollationLedger
from firmware.errors import (
    CollationAlreadyFailed,
    CollationLedgerUnavailable,
    CollationRefused,
    CollationTriesLow,
)
from hal.clock import JST

log = logging.getLogger(__name__)

#: Era name → first Gregorian day (昭和 onwards: older holders' cards are not issued any more).
ERA_STARTS = {"令和": dt.date(2019, 5, 1), "平成": dt.date(1989, 1, 8), "昭和": dt.date(1926, 12, 25)}
ERA_ENDS = {"平成": dt.date(2019, 4, 30), "昭和": dt.date(1989, 1, 7)}
FIRST_EXPIRY_YEAR = 2016  # cards are issued since 2016-01


@dataclass(frozen=True)
class CollationB:
    """The three card-face fields that make 照合番号B, as read by the OCR.

    Attributes:
        birth_era_yymmdd: birth date as printed, era year + month + day, 6 ASCII digits
            (昭和55年2月17日 → ``"550217"``; 元年 → ``01``).
        expiry_year: the card's expiry year, 4 ASCII digits (Gregorian, as printed).
        security_code: the 4-digit security code.
        confident: the OCR's overall gate (e.g. per-character probabilities, two frames agreeing).
        birth_confident / expiry_confident / code_confident: per-field gates; all must hold.
        era: the era name read beside the birth date (``"昭和"``, ``"平成"``, ``"令和"``), if read; used
            to check the date exists in that era.
    """

    birth_era_yymmdd: str
    expiry_year: str
    security_code: str
    confident: bool
    birth_confident: bool = True
    expiry_confident: bool = True
    code_confident: bool = True
    era: str | None = None

    @classmethod
    def from_digits(cls, digits: str, confident: bool, era: str | None = None) -> CollationB:
        """Split 14 digits (era YYMMDD + expiry YYYY + code), e.g. from an OCR gate's accepted result."""
        digits = str(digits)
        return cls(digits[:6], digits[6:10], digits[10:14] if len(digits) == 14 else digits[10:],
                   confident, era=era)

    @property
    def digits(self) -> str:
        """The 14 digits sent with VERIFY (never log them)."""
        return f"{self.birth_era_yymmdd}{self.expiry_year}{self.security_code}"

    @property
    def all_confident(self) -> bool:
        return bool(self.confident and self.birth_confident and self.expiry_confident and self.code_confident)

    def problems(self, today: dt.date | None = None) -> list[str]:
        """Why these fields cannot be a real card's (empty when complete and self-consistent)."""
        today = today or dt.datetime.now(JST).date()
        found: list[str] = []
        for name, value, length in (("birth date", self.birth_era_yymmdd, 6), ("expiry year", self.expiry_year, 4),
                                    ("security code", self.security_code, 4)):
            if not isinstance(value, str) or len(value) != length or not value.isascii() or not value.isdigit():
                found.append(f"{name} is not {length} digits")
        if found:
            return found
        yy, mm, dd = int(self.birth_era_yymmdd[:2]), int(self.birth_era_yymmdd[2:4]), int(self.birth_era_yymmdd[4:])
        if not 1 <= mm <= 12:
            found.append("birth month is not 1-12")
        if not 1 <= dd <= 31:
            found.append("birth day is not 1-31")
        if yy < 1:
            found.append("era year 00 does not exist")
        expiry = int(self.expiry_year)
        if not FIRST_EXPIRY_YEAR <= expiry <= today.year + 11:
            found.append(f"expiry year {expiry} is outside {FIRST_EXPIRY_YEAR}..{today.year + 11}")
        if self.era is not None:
            if self.era not in ERA_STARTS:
                found.append("unknown era")
            elif not found:
                found.extend(_era_date_problems(self.era, yy, mm, dd, today))
        elif not found:
            # Without the era, the day must at least exist in some year's month.
            if dd > (29 if mm == 2 else 30 if mm in (4, 6, 9, 11) else 31):
                found.append("birth day does not exist in that month")
        return found

    def __repr__(self) -> str:  # the fields are personal data and a secret
        return f"CollationB(<hidden>, confident={self.all_confident})"


def _era_date_problems(era: str, yy: int, mm: int, dd: int, today: dt.date) -> list[str]:
    start = ERA_STARTS[era]
    try:
        birth = dt.date(start.year + yy - 1, mm, dd)
    except ValueError:
        return ["birth date does not exist in the calendar"]
    if birth < start or birth > ERA_ENDS.get(era, today):
        return ["birth date falls outside its era"]
    if birth > today:
        return ["birth date is in the future"]
    return []


DEFAULT_MIN_TRIES_LEFT = 6  # the default of card.min_collation_tries_left: a lost try still leaves 5


@dataclass(frozen=True)
class CollationPolicy:
    """Decides whether a 照合番号B try may be spent; the 券面AP asks it at each step of the VERIFY.

    A try is spent only when all of these hold, checked in this order (cheapest, and least card
    traffic, first):

    1. :meth:`check_reading`: the reading is a complete, self-consistent and confident
       :class:`CollationB` (the OCR gate passed);
    2. :meth:`check_history`: the card has lost no try to this kiosk (``ledger``; a ledger that cannot
       be read or written refuses everything);
    3. :meth:`check_counter`: the card's counter is at least ``min_tries_left`` (``==`` is allowed).

    Attributes:
        ledger: the kiosk's :class:`~firmware.card.collation_ledger.CollationLedger`; None refuses
            every try (no history, no try).
        min_tries_left: ``card.min_collation_tries_left``: the counter must be at least this to try.
    """

    ledger: CollationLedger | None
    min_tries_left: int = DEFAULT_MIN_TRIES_LEFT

    def __post_init__(self) -> None:
        if not 1 <= int(self.min_tries_left) <= 10:
            raise ValueError(f"min_tries_left must be 1..10, not {self.min_tries_left}")

    @classmethod
    def from_config(cls, config) -> CollationPolicy:
        """The kiosk's policy: the ledger in ``config.data_dir``, ``config.card.min_collation_tries_left``."""
        return cls(CollationLedger(config.data_dir), config.card.min_collation_tries_left)

    def check_reading(self, collation: CollationB, today: dt.date | None = None) -> None:
        """Raise :class:`CollationRefused` unless ``collation`` is complete, consistent and confident."""
        if not isinstance(collation, CollationB):
            raise CollationRefused("no OCR result to send")
        problems = collation.problems(today)
        if problems:
            raise CollationRefused("the card-face reading is incomplete or inconsistent: " + "; ".join(problems))
        if not collation.all_confident:
            raise CollationRefused("the card-face reading is not confident enough to spend a try")

    def check_history(self, card_key: str) -> None:
        """Raise unless the card has lost no try to this kiosk.

        Raises:
            CollationAlreadyFailed: it has (a failure, or an attempt whose outcome was never recorded).
            CollationLedgerUnavailable: there is no ledger or it cannot be read.
        """
        if self.ledger is None:
            raise CollationLedgerUnavailable("no 照合番号B ledger configured: the kiosk does not try without one")
        lost = self.ledger.failures(card_key)
        if lost:
            raise CollationAlreadyFailed(f"this card already lost {lost} 照合番号B tr{'y' if lost == 1 else 'ies'} "
                                         "to this kiosk; it will not try again")

    def check_counter(self, tries_left: int) -> None:
        """Raise :class:`CollationTriesLow` unless ``tries_left >= min_tries_left``."""
        if tries_left < self.min_tries_left:
            raise CollationTriesLow(tries_left, f"only {tries_left} 照合番号B tries left; the kiosk tries only "
                                                f"with {self.min_tries_left} or more")
