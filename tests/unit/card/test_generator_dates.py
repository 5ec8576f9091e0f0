"""Generated profiles are cards that work today, dated by the real rules (see hal.sim.card.generator).

The rules are written again here, independently of the generator: the card expires on the 10th
birthday after issue (the 5th if the holder was under 18 on the issue date); the JPKI certificates
run from the issue date to the 5th birthday after it, never past the card.
"""

from __future__ import annotations

import datetime as dt
import tomllib

import numpy as np
import pytest
from cryptography import x509
from typer.testing import CliRunner

from firmware.card.cvc import parse_cvc
from hal.sim.card import generator
from hal.sim.card.generator import make_profile, plan_dates
from hal.sim.card.profile import AID_JPKI, AID_KENMEN_KAKUNIN
from hal.sim.card.throwaway_pki import JST, new_rsa_key
from provisioning.card_cmd import app

from .conftest import NOW, TODAY_JST

SEEDS = range(300)


def birthday(birth: dt.date, year: int) -> dt.date:
    return dt.date(year, 2, 28) if (birth.month, birth.day) == (2, 29) and year % 4 else birth.replace(year=year)


def birthdays_after(birth: dt.date, day: dt.date, n: int) -> dt.date:
    found, year = 0, day.year
    while True:
        candidate = birthday(birth, year)
        if candidate > day:
            found += 1
            if found == n:
                return candidate
        year += 1


def age(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def expected_card_expiry(birth: dt.date, issued: dt.date) -> dt.date:
    return birthdays_after(birth, issued, 10 if age(birth, issued) >= 18 else 5)


def end_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), JST)


def test_the_born_2010_08_19_card_is_a_minors_card_valid_today():
    """Seed 2's holder (the card used to be valid until 2023-08-19, i.e. expired)."""
    dates = plan_dates(dt.date(2010, 8, 19), np.random.default_rng(0), TODAY_JST)
    assert TODAY_JST - dt.timedelta(days=365) <= dates.issued < TODAY_JST
    assert dates.card_expiry == birthdays_after(dt.date(2010, 8, 19), dates.issued, 5)
    assert dates.auth_not_after == dates.card_expiry  # a minor's card and certificate end together


@pytest.mark.parametrize("birth", [dt.date(2000, 2, 29), dt.date(1927, 1, 1), TODAY_JST - dt.timedelta(days=2)])
def test_edge_births(birth):
    dates = plan_dates(birth, np.random.default_rng(1), TODAY_JST)
    assert birth < dates.issued < TODAY_JST
    assert dates.card_expiry == expected_card_expiry(birth, dates.issued)
    assert dates.card_expiry > TODAY_JST


@pytest.fixture
def fast_keys(monkeypatch):
    """One RSA key for every profile, CA keys loaded once: the dates are under test, not the keys.

    Loading a PEM RSA key checks it (~50 ms); three per profile would make 300 profiles take a minute.
    """
    key = new_rsa_key()
    monkeypatch.setattr(generator, "new_rsa_key", lambda: key)
    loaded: dict = {}

    def once(label, load):
        if label not in loaded:
            loaded[label] = load()
        return loaded[label]

    real_ca, real_key = generator.ThrowAwayCa.load_or_create, generator.load_or_create_key

    class CachedCa:
        @staticmethod
        def load_or_create(cache, purpose, now):
            return once(("ca", cache, purpose), lambda: real_ca(cache, purpose, now))

    monkeypatch.setattr(generator, "ThrowAwayCa", CachedCa)
    monkeypatch.setattr(generator, "load_or_create_key",
                        lambda cache, label: once(("key", cache, label), lambda: real_key(cache, label)))


def check_profile(info, now: dt.datetime, state: str = "valid") -> None:
    today = now.astimezone(JST).date()
    root = info.directory
    card = tomllib.loads((root / "card.toml").read_text(encoding="utf-8"))["info"]
    issued = dt.date.fromisoformat(card["issued"])
    assert issued == info.issued and issued < today
    auth = x509.load_der_x509_certificate((root / "ef" / AID_JPKI / "000A.bin").read_bytes())
    if info.kind in ("card", "face-only"):
        birth = dt.date.fromisoformat(card["birth_date"])
        expiry = dt.date.fromisoformat(card["card_expiry"])
        assert birth < issued
        assert expiry == expected_card_expiry(birth, issued), (birth, issued, expiry)
        assert expiry >= today  # the card itself is valid today, whatever its certificate's state
        assert auth.not_valid_after_utc <= end_of_day(expiry)
        cvc = parse_cvc((root / "ef" / AID_KENMEN_KAKUNIN / "0004.bin").read_bytes())
        assert (cvc.effective, cvc.expiry) == (issued, expiry)
        face = (root / "ef" / AID_KENMEN_KAKUNIN / "0002.bin").read_bytes()
        assert b"\xdf\x29\x08" + expiry.strftime("%Y%m%d").encode() in face
        assert info.collation_b[6:10] == f"{expiry.year:04d}"
        if state == "valid":
            assert auth.not_valid_after_utc == end_of_day(min(birthdays_after(birth, issued, 5), expiry))
        else:
            assert age(birth, issued) >= 18  # an adult's card outlives its certificate, as real ones do
    if state != "not-yet-valid":
        assert auth.not_valid_before_utc == dt.datetime.combine(issued, dt.time(), JST)
    if state == "valid":
        assert auth.not_valid_before_utc <= now <= auth.not_valid_after_utc
        assert auth.not_valid_after_utc - now > dt.timedelta(days=365 * 3)  # far from the renewal alert
    if info.kind != "face-only":
        sign = x509.load_der_x509_certificate((root / "ef" / AID_JPKI / "0001.bin").read_bytes())
        assert sign.not_valid_after_utc == auth.not_valid_after_utc


def test_three_hundred_seeds_obey_the_rules(tmp_path, ca_dir, fast_keys):
    for seed in SEEDS:
        kind = "card" if seed % 3 else "face-only"
        info = make_profile(tmp_path / str(seed), kind=kind, now=NOW, ca_dir=ca_dir, seed=seed, card_face=False)
        check_profile(info, NOW)


def test_generation_is_deterministic_per_seed(tmp_path, ca_dir, fast_keys):
    first = make_profile(tmp_path / "a", now=NOW, ca_dir=ca_dir, seed=2, card_face=False)
    second = make_profile(tmp_path / "b", now=NOW, ca_dir=ca_dir, seed=2, card_face=False)
    assert (first.issued, first.card_expiry, first.birth_date, first.collation_b) == (
        second.issued, second.card_expiry, second.birth_date, second.collation_b)


@pytest.mark.parametrize("state", ["expiring", "grace", "unusable", "not-yet-valid"])
@pytest.mark.parametrize("seed", [2, 3, 18, 40])
def test_certificate_states_stay_inside_a_valid_card(tmp_path, ca_dir, fast_keys, state, seed):
    info = make_profile(tmp_path / state, now=NOW, cert_state=state, ca_dir=ca_dir, seed=seed, card_face=False)
    check_profile(info, NOW, state)


@pytest.mark.parametrize("kind", ["android", "iphone"])
def test_phone_tokens_are_dated_too(tmp_path, ca_dir, fast_keys, kind):
    for seed in range(20):
        check_profile(make_profile(tmp_path / str(seed), kind=kind, now=NOW, ca_dir=ca_dir, seed=seed), NOW)


def test_a_certificate_no_card_can_outlive_is_refused(tmp_path, ca_dir, fast_keys):
    with pytest.raises(generator.ProfileError, match="would outlive any card"):
        make_profile(tmp_path / "far", now=NOW, auth_not_after=TODAY_JST.replace(year=TODAY_JST.year + 11),
                     ca_dir=ca_dir, seed=1, card_face=False)


@pytest.mark.parametrize("seed", [2, 3, 18])  # the seeds whose cards had expired before the fix
def test_card_read_photo_and_genuineness_on_a_fresh_profile(tmp_path, ca_dir, seed):
    """The CLI as a technician runs it, on today's clock (make-profile has no --now)."""
    runner = CliRunner()
    directory = tmp_path / f"card-{seed}"
    made = runner.invoke(app, ["make-profile", str(directory), "--seed", str(seed), "--ca-dir", str(ca_dir),
                               "--no-card-face"])
    assert made.exit_code == 0, made.output
    collation_b = tomllib.loads((directory / "card.toml").read_text(encoding="utf-8"))["pin"][
        f"{AID_KENMEN_KAKUNIN}/0012"]["value"]
    result = runner.invoke(app, ["read", "--reader", f"sim:{directory}", "--json", "--photo",
                                 "--issuer-keys", str(directory / "issuer")],
                           env={"UKETSUKE_COLLATION_B": collation_b})
    assert result.exit_code == 0, result.output
    assert '"genuine": "yes' in result.output and '"status": "valid"' in result.output
