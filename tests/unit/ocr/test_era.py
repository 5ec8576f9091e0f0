"""Era (和暦) conversion: boundaries, 元年, refusals, and agreement with the renderer's own table."""

import datetime as dt

import numpy as np
import pytest

from firmware.card.ocr import era
from hal.sim.card_face import wareki


@pytest.mark.parametrize(("name", "year", "month", "day", "expected"), [
    ("昭和", 55, 2, 17, dt.date(1980, 2, 17)),
    ("昭和", 1, 12, 25, dt.date(1926, 12, 25)),
    ("昭和", 64, 1, 7, dt.date(1989, 1, 7)),
    ("平成", 1, 1, 8, dt.date(1989, 1, 8)),
    ("平成", 31, 4, 30, dt.date(2019, 4, 30)),
    ("令和", 1, 5, 1, dt.date(2019, 5, 1)),
    ("令和", 8, 2, 29, None),  # 2026 is not a leap year
    ("平成", 12, 2, 29, dt.date(2000, 2, 29)),
])
def test_to_gregorian(name, year, month, day, expected):
    if expected is None:
        with pytest.raises(ValueError):
            era.to_gregorian(name, year, month, day)
    else:
        assert era.to_gregorian(name, year, month, day) == expected


@pytest.mark.parametrize(("name", "year", "month", "day"), [
    ("昭和", 64, 1, 8),  # first day of 平成
    ("昭和", 1, 12, 24),  # still 大正
    ("平成", 31, 5, 1),  # first day of 令和
    ("平成", 1, 1, 7),
    ("令和", 1, 4, 30),
    ("大正", 10, 1, 1),  # unsupported era
    ("令和", 0, 6, 1),
    ("昭和", 30, 13, 1),
])
def test_to_gregorian_refuses_dates_outside_their_era(name, year, month, day):
    with pytest.raises(ValueError):
        era.to_gregorian(name, year, month, day)


def test_collation_digits_example_from_protocol_reference():
    assert era.collation_birth_digits(dt.date(1980, 2, 17)) == "550217"
    assert era.collation_birth_digits(dt.date(1989, 1, 8)) == "010108"  # 平成元年
    assert era.collation_birth_digits(dt.date(2019, 5, 1)) == "010501"  # 令和元年


def test_from_gregorian_refuses_taisho():
    with pytest.raises(ValueError):
        era.from_gregorian(dt.date(1926, 12, 24))


def test_firmware_and_renderer_agree_on_every_day_near_boundaries_and_at_random():
    days = [start + dt.timedelta(days=k) for start in (dt.date(1926, 12, 25), dt.date(1989, 1, 8),
                                                     dt.date(2019, 5, 1)) for k in range(-1, 2)]
    rng = np.random.default_rng(0)
    days += [dt.date(1927, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 36500, 500)]
    for day in days:
        if day < dt.date(1926, 12, 25):
            continue
        name, year = era.from_gregorian(day)
        assert (name, year) == wareki(day)
        assert era.to_gregorian(name, year, day.month, day.day) == day
