"""Certificate status against a clock, in Japan time, with the physical-card-only grace."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware.card.certificate import CertStatus, grace_end, status_at
from firmware.card.jpki import TokenKind
from firmware.card.mynumber import MyNumberCard
from hal.sim.card.generator import make_profile
from tests.unit.card.conftest import NOW

UTC = dt.UTC
NOT_BEFORE = dt.datetime(2021, 1, 1, tzinfo=UTC)
NOT_AFTER = dt.datetime(2026, 5, 15, 14, 59, 59, tzinfo=UTC)  # 2026-05-15 23:59:59 JST


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize("now, card, phone", [
    ("2026-02-15T14:59:58+00:00", CertStatus.VALID, CertStatus.VALID),
    ("2026-02-15T15:00:00+00:00", CertStatus.EXPIRING, CertStatus.EXPIRING),  # 3 months before, JST
    ("2026-05-15T14:59:59+00:00", CertStatus.EXPIRING, CertStatus.EXPIRING),
    ("2026-05-15T15:00:00+00:00", CertStatus.GRACE, CertStatus.UNUSABLE),  # 2026-05-16 00:00 JST
    ("2026-08-31T14:59:59+00:00", CertStatus.GRACE, CertStatus.UNUSABLE),  # end of May + 3 months, JST
    ("2026-08-31T15:00:00+00:00", CertStatus.UNUSABLE, CertStatus.UNUSABLE),
    ("2020-12-31T23:59:59+00:00", CertStatus.UNUSABLE, CertStatus.UNUSABLE),  # before notBefore
])
def test_status_boundaries_month_end_reading(now, card, phone):
    assert status_at(NOT_BEFORE, NOT_AFTER, at(now), True, "month_end") is card
    assert status_at(NOT_BEFORE, NOT_AFTER, at(now), False, "month_end") is phone


@pytest.mark.parametrize("now, card", [
    ("2026-08-15T14:59:59+00:00", CertStatus.GRACE),  # 2026-08-15 23:59:59 JST: 3 months after 15 May
    ("2026-08-15T15:00:00+00:00", CertStatus.UNUSABLE),  # 16 Aug JST: past it (month_end: still grace)
])
def test_status_boundaries_three_months_reading(now, card):
    assert status_at(NOT_BEFORE, NOT_AFTER, at(now), True, "months") is card
    assert status_at(NOT_BEFORE, NOT_AFTER, at(now), True) is card  # the default reading
    assert status_at(NOT_BEFORE, NOT_AFTER, at(now), False, "months") is CertStatus.UNUSABLE
    assert status_at(NOT_BEFORE, NOT_AFTER, at(now), True, "month_end") is CertStatus.GRACE


def test_compared_in_japan_time_not_utc():
    # Expiry on 30 Nov JST; the grace runs to the end of February (a short month) JST.
    not_after = dt.datetime(2026, 11, 30, 14, 59, 59, tzinfo=UTC)
    assert grace_end(not_after, "month_end") == dt.datetime(2027, 2, 28, 23, 59, 59, 999999,
                                               tzinfo=dt.timezone(dt.timedelta(hours=9)))
    # 15:30 UTC on 28 Feb is already 1 March in Japan: past the grace.
    for rule in ("months", "month_end"):  # 30 Nov + 3 months is 28 Feb in either reading
        assert grace_end(not_after, rule) == grace_end(not_after, "month_end")
        assert status_at(NOT_BEFORE, not_after, at("2027-02-28T15:30:00+00:00"), True, rule) is CertStatus.UNUSABLE
        assert status_at(NOT_BEFORE, not_after, at("2027-02-28T14:30:00+00:00"), True, rule) is CertStatus.GRACE


def test_naive_clock_is_refused():
    with pytest.raises(ValueError):
        status_at(NOT_BEFORE, NOT_AFTER, dt.datetime(2026, 1, 1), True)


@pytest.mark.parametrize("state, card_status, phone_status", [
    ("expiring", CertStatus.EXPIRING, CertStatus.EXPIRING),
    ("grace", CertStatus.GRACE, CertStatus.UNUSABLE),
    ("unusable", CertStatus.UNUSABLE, CertStatus.UNUSABLE),
    ("not-yet-valid", CertStatus.UNUSABLE, CertStatus.UNUSABLE),
])
def test_generated_profiles_read_back_with_status(tmp_path, ca_dir, reader_for, state, card_status, phone_status):
    info = make_profile(tmp_path / state, kind="iphone", now=NOW, cert_state=state, ca_dir=ca_dir,
                        card_face=False)
    card = MyNumberCard(reader_for(info).wait_for_card(0))
    cert = card.read_auth_certificate()
    assert cert.status_at(NOW, card.read_token_kind()) is phone_status
    assert cert.status_at(NOW, TokenKind.CARD) is card_status
