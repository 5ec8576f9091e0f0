"""The 照合番号B ledger and policy: a card never loses more than one try to this kiosk, whatever happens.

Every test that taps uses a fresh MyNumberCard per tap and re-opens the ledger from the same data
dir, as a kiosk restarted between patients would.
"""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.card import collation_ledger
from firmware.card.collation import CollationB, CollationPolicy
from firmware.card.collation_ledger import LEDGER_NAME, CollationLedger
from firmware.card.mynumber import MyNumberCard
from firmware.errors import (
    CollationAlreadyFailed,
    CollationLedgerUnavailable,
    CollationMismatch,
    CollationRefused,
    RefusalReason,
)
from hal.errors import CardRemoved
from hal.sim.card.profile import AID_KENMEN_KAKUNIN
from hal.sim.card.profile import read_counters as card_counters
from tests.unit.card.conftest import TODAY_JST

B_REF = f"{AID_KENMEN_KAKUNIN}/0012"


def reading(digits: str) -> CollationB:
    """What a confident OCR hands over (it passed the gate)."""
    return CollationB.from_digits(digits, confident=True)


def misread(digits: str) -> str:
    """A systematic confident misread: a plausible wrong security code, same every tap."""
    return digits[:10] + ("7777" if digits[10:] != "7777" else "1111")


def sent_collation(reader) -> bool:
    return any(apdu[1] == 0x20 and len(apdu) > 4 for apdu, _ in reader.history)


def tap(reader_for, info, kiosk_dir, min_tries_left=6):
    """One patient tap: a new reader session, a new card object, the ledger re-opened from disk."""
    reader = reader_for(info)
    policy = CollationPolicy(CollationLedger(kiosk_dir), min_tries_left)
    card = MyNumberCard(reader.wait_for_card(0), collation_policy=policy)
    card.read_auth_certificate()  # the flow reads it first on every path
    return card, reader


def test_twenty_taps_of_a_systematic_misread_cost_at_most_one_try(profile, reader_for, kiosk_dir):
    info = profile("card")
    outcomes = []
    for _ in range(20):
        card, reader = tap(reader_for, info, kiosk_dir)
        with pytest.raises((CollationMismatch, CollationRefused)) as raised:
            card.verify_collation_b(reading(misread(info.collation_b)), today=TODAY_JST)
        outcomes.append((type(raised.value), sent_collation(reader)))
    assert card_counters(info.directory)[B_REF] == 9
    assert outcomes[0] == (CollationMismatch, True)
    assert all(outcome == (CollationAlreadyFailed, False) for outcome in outcomes[1:])
    # Even the right number is no longer tried at this kiosk: that card goes to PIN or staff here.
    card, reader = tap(reader_for, info, kiosk_dir)
    with pytest.raises(CollationAlreadyFailed) as refused:
        card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert refused.value.reason is RefusalReason.FAILED_HERE_BEFORE and not sent_collation(reader)


def test_other_cards_are_not_affected_and_successes_leave_nothing(profile, reader_for, kiosk_dir, tmp_path):
    from hal.sim.card.generator import make_profile
    from tests.unit.card.conftest import NOW

    info = profile("card")
    card, _ = tap(reader_for, info, kiosk_dir)
    with pytest.raises(CollationMismatch):
        card.verify_collation_b(reading(misread(info.collation_b)), today=TODAY_JST)
    ledger = CollationLedger(kiosk_dir)
    assert ledger.failures(ledger.card_key(card.read_auth_certificate())) == 1
    # Another card (its own certificate) is tried and succeeds; a success keeps no entry.
    other = make_profile(tmp_path / "other", kind="card", now=NOW, ca_dir=tmp_path / "ca2", seed=11,
                         card_face=False)
    card, reader = tap(reader_for, other, kiosk_dir)
    card.verify_collation_b(reading(other.collation_b), today=TODAY_JST)
    assert sent_collation(reader)
    document = json.loads((kiosk_dir / LEDGER_NAME).read_text())
    assert len(document["cards"]) == 1  # only the card that failed


def test_ledger_holds_no_personal_data(profile, reader_for, kiosk_dir):
    import tomllib

    info = profile("card")
    card, _ = tap(reader_for, info, kiosk_dir)
    certificate = card.read_auth_certificate()
    with pytest.raises(CollationMismatch):
        card.verify_collation_b(reading(misread(info.collation_b)), today=TODAY_JST)
    meta = tomllib.loads((info.directory / "card.toml").read_text(encoding="utf-8"))
    stored = b"".join(path.read_bytes() for path in kiosk_dir.iterdir() if path.name != "collation-ledger.key")
    secrets_ = [info.collation_b, misread(info.collation_b), info.collation_b[:6], info.collation_b[:10],
                str(certificate.serial), certificate.serial_hex, certificate.serial_hex.lower(),
                certificate.subject, certificate.issuer, "番号", "花子"]
    secrets_ += [str(v) for v in meta.values() if isinstance(v, str) and len(v) >= 6]
    secrets_ += [meta.get("birth_date", "").replace("-", "")] if meta.get("birth_date") else []
    for secret in filter(None, secrets_):
        assert secret.encode("utf-8") not in stored, secret
    serial_der = certificate.serial.to_bytes((certificate.serial.bit_length() + 7) // 8, "big")
    assert serial_der not in stored
    key_mode = stat.S_IMODE(os.stat(kiosk_dir / "collation-ledger.key").st_mode)
    assert key_mode == 0o600
    assert stat.S_IMODE(os.stat(kiosk_dir / LEDGER_NAME).st_mode) & 0o077 == 0


def test_nothing_secret_in_the_logs(profile, reader_for, kiosk_dir, caplog):
    info = profile("card")
    caplog.set_level(logging.DEBUG)
    for _ in range(2):
        card, _ = tap(reader_for, info, kiosk_dir)
        with pytest.raises((CollationMismatch, CollationAlreadyFailed)) as raised:
            card.verify_collation_b(reading(misread(info.collation_b)), today=TODAY_JST)
        assert info.collation_b[:6] not in str(raised.value)
    text = caplog.text
    for secret in (info.collation_b, misread(info.collation_b), info.collation_b[:6],
                   str(card.read_auth_certificate().serial)):
        assert secret not in text


def test_corrupt_ledger_fails_closed_until_a_technician_resets_it(profile, reader_for, kiosk_dir, caplog):
    info = profile("card")
    CollationLedger(kiosk_dir)  # first use creates key + ledger
    (kiosk_dir / LEDGER_NAME).write_bytes(b'{"format": "uketsuke-collation-ledger", "version": 1, "cards": [')
    with caplog.at_level(logging.ERROR):
        card, reader = tap(reader_for, info, kiosk_dir)
    assert "照合番号B ledger unavailable" in caplog.text
    with pytest.raises(CollationLedgerUnavailable) as refused:
        card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert refused.value.reason is RefusalReason.LEDGER_UNAVAILABLE and not sent_collation(reader)
    assert list(kiosk_dir.glob("collation-ledger.corrupt-*.json"))  # moved aside, kept for inspection
    assert not (kiosk_dir / LEDGER_NAME).exists()
    # A restart does not mistake the moved-aside ledger for a new kiosk.
    again = CollationLedger(kiosk_dir)
    assert not again.available and "blocked" in again.problem
    card, reader = tap(reader_for, info, kiosk_dir)
    with pytest.raises(CollationLedgerUnavailable):
        card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert not sent_collation(reader) and card_counters(info.directory)[B_REF] == 10
    again.reset()
    card, reader = tap(reader_for, info, kiosk_dir)
    card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert sent_collation(reader)


@pytest.mark.parametrize("damage", [
    lambda d: (d / LEDGER_NAME).write_bytes(b"\xff\xfe not json"),
    lambda d: (d / LEDGER_NAME).write_text('{"format": "something else", "version": 1, "cards": {}}'),
    lambda d: (d / LEDGER_NAME).write_text('{"format": "uketsuke-collation-ledger", "version": 2, "cards": {}}'),
    lambda d: (d / LEDGER_NAME).write_text(json.dumps({"format": "uketsuke-collation-ledger", "version": 1,
                                                       "cards": {"ab": {"failed": [], "pending": []}}})),
    lambda d: (d / LEDGER_NAME).unlink(),                    # history lost, key kept
    lambda d: (d / "collation-ledger.key").unlink(),         # key lost: old entries cannot be matched
    lambda d: (d / "collation-ledger.key").write_bytes(b"short"),
])
def test_any_damage_fails_closed(kiosk_dir, damage):
    CollationLedger(kiosk_dir)
    damage(kiosk_dir)
    ledger = CollationLedger(kiosk_dir)
    assert not ledger.available
    with pytest.raises(CollationLedgerUnavailable):
        CollationPolicy(ledger).check_history("0" * 64)
    with pytest.raises(CollationLedgerUnavailable):
        ledger.begin("0" * 64)


def test_damage_found_while_running_fails_closed(kiosk_dir):
    ledger = CollationLedger(kiosk_dir)
    key = "a" * 64
    assert ledger.failures(key) == 0
    (kiosk_dir / LEDGER_NAME).write_text("garbage")
    with pytest.raises(CollationLedgerUnavailable):
        ledger.failures(key)
    assert not ledger.available


def test_unresolved_attempt_counts_as_a_failed_try(kiosk_dir):
    """Power cut after the write-ahead, before the outcome was recorded: the try counts as lost."""
    ledger = CollationLedger(kiosk_dir)
    key = "b" * 64
    ledger.begin(key)
    del ledger  # the process dies here
    reopened = CollationLedger(kiosk_dir)
    assert reopened.failures(key) == 1
    with pytest.raises(CollationAlreadyFailed):
        CollationPolicy(reopened).check_history(key)


def test_card_pulled_at_the_verify_counts_as_a_failed_try(profile, reader_for, kiosk_dir):
    info = profile("card")
    card, reader = tap(reader_for, info, kiosk_dir)
    reader.remove_after(3)  # SELECT AP, SELECT EF, VERIFY (tries left) answer; then the card is gone
    with pytest.raises(CardRemoved):
        card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    card, reader = tap(reader_for, info, kiosk_dir)
    with pytest.raises(CollationAlreadyFailed):  # the kiosk cannot know the counter did not move
        card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert not sent_collation(reader)


def test_write_ahead_that_cannot_be_written_sends_nothing(profile, reader_for, kiosk_dir, monkeypatch):
    info = profile("card")
    card, reader = tap(reader_for, info, kiosk_dir)

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(collation_ledger, "_atomic_write", disk_full)
    with pytest.raises(CollationLedgerUnavailable):
        card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert not sent_collation(reader)
    assert card_counters(info.directory)[B_REF] == 10
    assert not card.collation_policy.ledger.available  # and it stays closed in this process


def test_outcome_that_cannot_be_written_still_counts(profile, reader_for, kiosk_dir, monkeypatch):
    """The write-ahead went to disk, the resolution did not: the pending record counts as a failure."""
    info = profile("card")
    card, reader = tap(reader_for, info, kiosk_dir)
    ledger = card.collation_policy.ledger
    real_begin = ledger.begin

    def begin_then_break(card_key):
        attempt = real_begin(card_key)
        monkeypatch.setattr(collation_ledger, "_atomic_write", lambda path, data: (_ for _ in ()).throw(OSError()))
        return attempt

    monkeypatch.setattr(ledger, "begin", begin_then_break)
    card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)  # the card accepted it
    monkeypatch.undo()
    card, reader = tap(reader_for, info, kiosk_dir)
    with pytest.raises(CollationAlreadyFailed):
        card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert not sent_collation(reader)


def test_no_ledger_no_try(profile, reader_for):
    info = profile("card")
    reader = reader_for(info)
    for card in (MyNumberCard(reader.wait_for_card(0)),
                 MyNumberCard(reader.wait_for_card(0), collation_policy=CollationPolicy(ledger=None))):
        with pytest.raises(CollationLedgerUnavailable):
            card.verify_collation_b(reading(info.collation_b), today=TODAY_JST)
    assert not sent_collation(reader)


def test_policy_from_config_uses_data_dir_and_minimum(tmp_path):
    from firmware.config import Config

    config = Config(data_dir=tmp_path / "var", card={"min_collation_tries_left": 7})
    policy = CollationPolicy.from_config(config)
    assert policy.min_tries_left == 7 and policy.ledger.path == tmp_path / "var" / LEDGER_NAME
    assert Config().card.min_collation_tries_left == 6
    with pytest.raises(ValueError):
        CollationPolicy(None, 0)


OPS = st.lists(st.tuples(st.sampled_from(["begin", "ok", "fail", "reopen", "drop"]), st.integers(0, 2)),
               max_size=30)


@given(OPS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_failures_are_exactly_the_lost_or_unknown_tries(tmp_path_factory, ops):
    """Whatever the order of begins, outcomes, restarts and dropped attempts, the count never under-counts."""
    directory = tmp_path_factory.mktemp("ledger")
    ledger = CollationLedger(directory)
    keys = [f"{i:x}" * 64 for i in range(3)]
    open_attempts: dict[int, list] = {0: [], 1: [], 2: []}
    lost = {0: 0, 1: 0, 2: 0}
    for op, card in ops:
        if op == "begin":
            open_attempts[card].append(ledger.begin(keys[card]))
        elif op in ("ok", "fail") and open_attempts[card]:
            attempt = open_attempts[card].pop(0)
            (ledger.succeeded if op == "ok" else ledger.failed)(attempt)
            lost[card] += op == "fail"
        elif op == "reopen":
            ledger = CollationLedger(directory)
        elif op == "drop" and open_attempts[card]:  # the outcome is never recorded (power cut)
            open_attempts[card].pop(0)
            lost[card] += 1
        for i in range(3):
            assert ledger.failures(keys[i]) == lost[i] + len(open_attempts[i])
