"""The terminal's checks of the user-authentication certificate (#11): issued by a configured trust
anchor (the test CA, the J-LIS roots), its status recomputed for the check-in in Japan time with the
kiosk's grace rule, and what that status allows."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from firmware.card.certificate import CertStatus
from firmware.link.schemas import Method, ResultMessage
from hal.sim.card.throwaway_pki import ThrowAwayCa, end_of_day_jst, new_rsa_key, user_certificate
from terminal.certificates import VISIT_SLACK, chain_problem, statuses_between
from terminal.trust import jlis_anchors
from terminal.verify import ChallengeBook, verify_result
from tests.proofs import Holder, Pki, face_result, pin_result

JST = dt.timezone(dt.timedelta(hours=9))


@pytest.fixture(scope="module")
def pki():
    return Pki()


def holder_until(pki: Pki, not_after: dt.datetime, not_before: dt.datetime | None = None) -> Holder:
    """A card of ``pki`` whose certificate ends at ``not_after`` (kept as the card's key and CVC)."""
    card = pki.holder()
    cert = user_certificate(pki.ca, card.key, purpose="user authentication",
                            not_before=not_before or not_after - dt.timedelta(days=5 * 365), not_after=not_after)
    return Holder(card.key, cert.public_bytes(serialization.Encoding.DER), card.card_key, card.cvc)


def checked(result, pki, **options):
    options.setdefault("anchors", pki.anchors)
    return verify_result(result, ChallengeBook(), pki.issuer_keys, **options)


def problems_with(verification, text: str) -> list[str]:
    return [p for p in verification.problems if text in p]


# ------------------------------------------------------------------ the chain


def test_issued_by_the_configured_test_ca(pki):
    ok = checked(pin_result(pki.holder(), None), pki)
    assert ok.verified is True and not problems_with(ok, "chain")


def test_no_anchors_is_said_not_failed(pki):
    unanchored = checked(pin_result(pki.holder(), None), pki, anchors=())
    assert unanchored.verified is True
    assert problems_with(unanchored, "chain unverified: the terminal has no trust anchors")


def test_a_wrong_anchor_fails(pki):
    other_hierarchy = ThrowAwayCa.create("digital signature", pki.now)  # another name
    same_name_other_key = ThrowAwayCa.create("user authentication", pki.now)  # our CA's name, not its key
    assert same_name_other_key.certificate.subject == pki.ca.certificate.subject
    result = pin_result(pki.holder(), None)
    for anchor, why in ((other_hierarchy, "issuer is none of the terminal's trust anchors"),
                        (same_name_other_key, "not signed by it")):
        verification = checked(result, pki, anchors=(anchor.certificate,))
        assert verification.verified is False and problems_with(verification, why), verification.problems
    both = checked(result, pki, anchors=(same_name_other_key.certificate, pki.ca.certificate))
    assert both.verified is True  # two anchors of one name (the J-LIS 2015 and 2023 roots): each is tried


def test_a_certificate_under_the_jlis_roots_names_but_not_their_keys_fails(pki):
    """A look-alike CA named exactly like J-LIS's user-authentication root issues a certificate."""
    anchors = jlis_anchors()
    assert len(anchors) == 2 and len({a.subject for a in anchors}) == 1
    name = anchors[0].subject
    key = new_rsa_key()
    now = dt.datetime.now(dt.UTC)
    fake_root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                 .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=400))
                 .not_valid_after(now + dt.timedelta(days=4000))
                 .add_extension(x509.BasicConstraints(ca=True, path_length=None), True).sign(key, hashes.SHA256()))
    look_alike = ThrowAwayCa(key, fake_root)
    card = pki.holder()
    cert = user_certificate(look_alike, card.key, purpose="user authentication",
                            not_before=now - dt.timedelta(days=30), not_after=now + dt.timedelta(days=365))
    forged = Holder(card.key, cert.public_bytes(serialization.Encoding.DER), card.card_key, card.cvc)
    assert cert.issuer == name
    for result in (pin_result(forged, None), face_result(forged, None)):
        verification = checked(result, pki, anchors=anchors)
        assert verification.verified is False
        assert problems_with(verification, "names a trust anchor as its issuer but is not signed by it")
    assert chain_problem(cert, (*anchors, fake_root)) is None  # only because the fake root was trusted


def test_a_certificate_issued_outside_its_anchors_validity_fails(pki):
    now = dt.datetime.now(dt.UTC)
    early = holder_until(pki, now + dt.timedelta(days=365), not_before=pki.ca.certificate.not_valid_before_utc
                         - dt.timedelta(days=1))
    verification = checked(pin_result(early, None), pki)
    assert verification.verified is False and problems_with(verification, "outside its trust anchor's validity")


# ------------------------------------------------------------------ the status


def test_expired_within_the_grace_passes_with_eligibility_only(pki):
    card = pki.holder(days_left=-20)
    grace = pin_result(card, None, cert_status="grace", eligibility_only=True)
    verification = checked(grace, pki)
    assert verification.verified is True, verification.problems
    with_consent = pin_result(card, None, cert_status="grace", eligibility_only=True,
                              consent={"PharmacistsInfo": {"flag": 1}})
    not_marked = pin_result(card, None, cert_status="grace")
    for result, why in ((with_consent, "carries consent"), (not_marked, "not marked eligibility-only")):
        verification = checked(result, pki)
        assert verification.verified is False and problems_with(verification, why)


def test_expired_beyond_the_grace_fails(pki):
    card = pki.holder(days_left=-120, days_valid=400)
    for claim in ("grace", "unusable"):
        verification = checked(pin_result(card, None, cert_status=claim, eligibility_only=True), pki)
        assert verification.verified is False
        assert problems_with(verification, "and its grace period ended on")


def test_a_smartphone_certificate_has_no_grace(pki):
    phone = pki.holder(days_left=-2)
    result = pin_result(phone, None, cert_status="grace", eligibility_only=True).model_copy(
        update={"method": Method.SMARTPHONE, "card_kind": "iphone"})
    verification = checked(result, pki)
    assert verification.verified is False
    assert problems_with(verification, "claims the certificate is grace")
    assert problems_with(verification, "a smartphone certificate has no grace period")


@pytest.mark.parametrize("days_left, claim, actual", [
    (365, "expiring", "valid"), (365, "grace", "valid"), (30, "valid", "expiring"),
    (-20, "valid", "grace"), (-20, "expiring", "grace"),
])
def test_a_claimed_status_that_disagrees_fails(pki, days_left, claim, actual):
    verification = checked(pin_result(pki.holder(days_left=days_left), None, cert_status=claim,
                                      eligibility_only=True), pki)
    assert verification.verified is False
    assert problems_with(verification, f"claims the certificate is {claim}, but on"), verification.problems
    assert problems_with(verification, f"it was {actual}")


def test_the_status_is_judged_in_japan_time(pki):
    """A JPKI certificate ends at 23:59:59 JST: at 00:40 JST the next day it has expired, though the
    UTC date (15:40 the day before) is still its last one."""
    card = holder_until(pki, end_of_day_jst(dt.date(2026, 6, 10)))
    at = dt.datetime(2026, 6, 11, 0, 40, tzinfo=JST)
    assert at.astimezone(dt.UTC).date() == dt.date(2026, 6, 10)
    grace = pin_result(card, None, cert_status="grace", eligibility_only=True, ts=at)
    assert checked(grace, pki, now=at).verified is True
    expiring = pin_result(card, None, cert_status="expiring", ts=at)
    verification = checked(expiring, pki, now=at)
    assert verification.verified is False
    assert problems_with(verification, "but on 2026-06-11 (Japan time, grace rule months) it was grace")
    # a visit tapped before midnight whose result was made after it: the kiosk judged at the tap
    just_after = pin_result(card, None, cert_status="expiring", ts=at - dt.timedelta(minutes=30))
    assert VISIT_SLACK >= dt.timedelta(minutes=11)
    assert checked(just_after, pki, now=at).verified is True


@pytest.mark.parametrize("rule, status", [("months", CertStatus.UNUSABLE), ("month_end", CertStatus.GRACE)])
def test_the_grace_boundary_follows_the_kiosks_rule(pki, rule, status):
    """Expired 5 August: 3 months after is 5 November (months), the end of November (month_end)."""
    card = holder_until(pki, end_of_day_jst(dt.date(2026, 8, 5)))
    at = dt.datetime(2026, 11, 20, 10, 0, tzinfo=JST)
    grace = pin_result(card, None, cert_status="grace", eligibility_only=True, ts=at)
    verification = checked(grace, pki, now=at, grace_rule=rule)
    assert verification.verified is (status is CertStatus.GRACE), verification.problems


def test_a_result_kept_in_the_outbox_is_judged_at_its_check_in(pki):
    """Checked in on the last day of the grace, arriving a week later: still that day's status."""
    card = holder_until(pki, end_of_day_jst(dt.date(2026, 8, 5)))
    checked_in = dt.datetime(2026, 11, 5, 15, 0, tzinfo=JST)
    late = pin_result(card, None, cert_status="grace", eligibility_only=True, ts=checked_in)
    assert checked(late, pki, now=checked_in + dt.timedelta(days=7)).verified is True


def test_a_result_dated_before_its_challenge_is_judged_at_the_challenge(pki):
    """A kiosk cannot date a fresh proof back to when the certificate was still valid."""
    book = ChallengeBook()
    card = pki.holder(days_left=-20, days_valid=1000)
    challenge = book.issue("s1", "r1", 1)[0]
    sixty_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)  # it was expiring then, in its grace now
    backdated = pin_result(card, challenge, cert_status="expiring", ts=sixty_days_ago)
    verification = verify_result(backdated, book, anchors=pki.anchors)
    assert verification.fresh and verification.verified is False
    assert problems_with(verification, "claims the certificate is expiring")
    unproven = pin_result(card, None, cert_status="expiring", ts=sixty_days_ago)  # no challenge: its own word
    assert verify_result(unproven, book, anchors=pki.anchors).verified is True


def test_statuses_between_sees_every_change():
    before, after = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), end_of_day_jst(dt.date(2026, 6, 10))

    class Cert:
        not_before, not_after = before, after

    day = dt.timedelta(days=1)
    assert statuses_between(Cert, before - day, after + 200 * day, True, "months") == set(CertStatus)
    assert statuses_between(Cert, before + day, before + 2 * day, True, "months") == {CertStatus.VALID}
    assert statuses_between(Cert, after - day, after + day, False, "months") == {CertStatus.EXPIRING,
                                                                               CertStatus.UNUSABLE}


# ------------------------------------------------------------------ method and token kind, revocation


@pytest.mark.parametrize("method, kind, why", [
    ("smartphone", "card", "a smartphone result names a card token"),
    ("pin", "iphone", "names a phone (iphone)"),
    ("pin", "face-only", "a face-only card, which has no PIN"),
])
def test_a_method_the_token_cannot_have_fails(pki, method, kind, why):
    result = pin_result(pki.holder(), None, method=Method(method), card_kind=kind)
    verification = checked(result, pki)
    assert verification.verified is False and problems_with(verification, why)


def test_the_revocation_hook(pki):
    card = pki.holder()
    serial = x509.load_der_x509_certificate(card.cert_der).serial_number
    verification = checked(pin_result(card, None), pki,
                           revoked=lambda cert: "listed in the CRL" if cert.serial_number == serial else None)
    assert verification.verified is False and problems_with(verification, "revoked: listed in the CRL")
    assert checked(pin_result(pki.holder(), None), pki, revoked=lambda cert: None).verified is True


def test_dates_at_the_calendars_end_are_a_problem_not_a_crash(pki):
    """notAfter 9999-12-31 23:59:59Z (RFC 5280's "no expiry") is past the calendar's end in Japan time."""
    card = holder_until(pki, dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
                        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    verification = checked(pin_result(card, None), pki)
    assert verification.verified is False and problems_with(verification, "cannot be judged")


def test_a_timestamp_without_a_time_zone_is_judged_at_arrival(pki):
    """Our kiosk always writes an offset; a bare local time names no instant, and must not crash."""
    fields = pin_result(pki.holder(), None).model_dump(mode="json") | {"ts": "2020-01-01T00:00:00"}
    result = ResultMessage.model_validate(fields)
    assert result.ts.tzinfo is None
    assert checked(result, pki).verified is True
