"""Japanese era (和暦) dates, as printed on the card's birth line, to and from Gregorian dates.

Why a module of its own: 照合番号B starts with the birth date's *era* year (YY), so a reader that gets
the era wrong spends one of the card's ten lifetime tries. Only the eras a living card holder can have
been born in are accepted; 大正 births (before 1926-12-25) are sent to PIN/staff like any other reject.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Era:
    """One era: its name as printed and its first and last Gregorian days."""

    name: str
    first_day: dt.date
    last_day: dt.date | None  # None: the current era

    def contains(self, day: dt.date) -> bool:
        return self.first_day <= day and (self.last_day is None or day <= self.last_day)


ERAS = (
    Era("昭和", dt.date(1926, 12, 25), dt.date(1989, 1, 7)),
    Era("平成", dt.date(1989, 1, 8), dt.date(2019, 4, 30)),
    Era("令和", dt.date(2019, 5, 1), None),
)
ERA_BY_NAME = {era.name: era for era in ERAS}


def to_gregorian(era_name: str, era_year: int, month: int, day: int) -> dt.date:
    """The Gregorian date of an era date, e.g. ``("昭和", 55, 2, 17)`` → 1980-02-17.

    Raises:
        ValueError: unknown era, impossible day, or a date outside that era (昭和65年, 令和元年4月).
    """
    era = ERA_BY_NAME.get(era_name)
    if era is None:
        raise ValueError(f"era must be one of {', '.join(ERA_BY_NAME)}, not {era_name!r}")
    if era_year < 1:
        raise ValueError(f"era year must be 1 (元年) or more, not {era_year}")
    gregorian = dt.date(era.first_day.year + era_year - 1, month, day)  # ValueError if impossible
    if not era.contains(gregorian):
        last = era.last_day.isoformat() if era.last_day else "today"
        raise ValueError(f"{era_name}{era_year}年{month}月{day}日 is outside {era_name} "
                         f"({era.first_day.isoformat()} to {last})")
    return gregorian


def from_gregorian(day: dt.date) -> tuple[str, int]:
    """The era name and era year of a Gregorian date.

    Raises:
        ValueError: the date is before 昭和.
    """
    for era in ERAS:
        if era.contains(day):
            return era.name, day.year - era.first_day.year + 1
    raise ValueError(f"{day.isoformat()} is before 昭和 (1926-12-25)")


def collation_birth_digits(day: dt.date) -> str:
    """The first six digits of 照合番号B: era year, month, day (YYMMDD), e.g. 1980-02-17 → ``550217``."""
    _, year = from_gregorian(day)
    return f"{year:02d}{day.month:02d}{day.day:02d}"
