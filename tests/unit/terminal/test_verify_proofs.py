"""The terminal's proof checks (#11): the face path's genuineness bound to the result's certificate
(two cards or two results combined fail), the face score against its threshold and the terminal's
minimum, and the honest PIN and face results that still verify."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.link.schemas import Method, ResultMessage
from terminal.verify import ChallengeBook, kiosk_face_threshold, verify_result
from tests.proofs import Pki, face_result, genuineness, pin_result, sign


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture
def book():
    return ChallengeBook()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check(result, book, pki, **options):
    return verify_result(result, book, pki.issuer_keys, anchors=pki.anchors, **options)


def test_honest_face_and_pin_results_verify_without_a_problem(pki, book):
    holder = pki.holder()
    for result in (face_result(holder, book.issue("s1", "r1", 1)[0]), pin_result(holder, book.issue("s1", "r1", 1)[0])):
        checked = check(result, book, pki)
        assert (checked.verified, checked.fresh, checked.problems) == (True, True, ()), result.method


# ------------------------------------------------------------------ genuineness bound to the certificate


def test_certificate_of_one_card_with_the_genuineness_proof_of_another_fails(pki, book):
    """Card A's certificate, card B's proof of its own tap (over the same nonce): a relay combining two cards."""
    card_a, card_b = pki.holder(), pki.holder()
    assert card_a.card_key is not card_b.card_key
    challenge = book.issue("s1", "r1", 1)[0]
    combined = face_result(card_a, challenge).model_copy(update={
        "genuineness_b64": b64(genuineness(card_b, challenge.nonce, card_b.cert_der)), "cvc_b64": b64(card_b.cvc)})
    checked = check(combined, book, pki)
    assert checked.verified is False
    assert any("does not verify over the nonce and the result's certificate" in p for p in checked.problems)


def test_result_assembled_from_two_results_fails(pki, book):
    first = face_result(pki.holder(), book.issue("s1", "r1", 1)[0])
    second = face_result(pki.holder(), book.issue("s1", "r1", 1)[0])
    proof_of_second = {key: getattr(second, key) for key in ("genuineness_b64", "cvc_b64")}
    for parts in (proof_of_second,  # the first one's certificate and nonce, the second one's card proof
                  proof_of_second | {"nonce_b64": second.nonce_b64, "challenge_id": second.challenge_id},
                  {"cert_der_b64": second.cert_der_b64}):  # the first one's proof, the second one's certificate
        checked = check(first.model_copy(update=parts), book, pki)
        assert checked.verified is False, parts.keys()
        assert any("belongs to another tap, card or result" in p for p in checked.problems)


def test_genuineness_over_the_bare_nonce_is_no_longer_enough(pki, book):
    """The form of before binds nothing to the certificate: it fails, and says why."""
    holder = pki.holder()
    challenge = book.issue("s1", "r1", 1)[0]
    unbound = face_result(holder, challenge).model_copy(
        update={"genuineness_b64": b64(sign(holder.card_key, challenge.nonce))})
    checked = check(unbound, book, pki)
    assert checked.verified is False
    assert any("covers the nonce alone" in p for p in checked.problems)


def test_what_the_binding_cannot_stop_a_relay_in_front_of_an_honest_kiosk(pki, book):
    """A relay device answers the kiosk's JPKI AP with card A's certificate and forwards the 券面AP to
    card B: B signs over A's certificate as the kiosk asks, and the terminal cannot tell (see
    docs/notes/proofs.md). This test pins that limit so that the docs stay true."""
    card_a, card_b = pki.holder(), pki.holder()
    challenge = book.issue("s1", "r1", 1)[0]
    relayed = face_result(card_a, challenge).model_copy(update={
        "genuineness_b64": b64(genuineness(card_b, challenge.nonce, card_a.cert_der)), "cvc_b64": b64(card_b.cvc)})
    assert check(relayed, book, pki).verified is True


@pytest.mark.parametrize("cvc", [b"\x00\x81", b"\x7f\x21\x01\x00", b"not a TLV at all"])
def test_a_malformed_cvc_is_a_problem_not_a_crash(pki, book, cvc):
    checked = check(face_result(pki.holder(), None, cvc_b64=b64(cvc)), book, pki)
    assert checked.verified is False and "the card's CVC does not parse" in checked.problems


def test_a_pin_signature_by_another_cards_key_fails(pki, book):
    card_a, card_b = pki.holder(), pki.holder()
    challenge = book.issue("s1", "r1", 1)[0]
    swapped = pin_result(card_a, challenge).model_copy(update={"cert_der_b64": card_b.cert_b64})
    checked = check(swapped, book, pki)
    assert checked.verified is False and any("does not verify with the certificate's key" in p for p in checked.problems)


# ------------------------------------------------------------------ the face score and its threshold


def test_the_default_minimum_is_the_kiosks_calibrated_threshold():
    from firmware.face.models import Manifest
    from firmware.face.session import DecisionRule

    assert kiosk_face_threshold() == DecisionRule().threshold(Manifest())


@pytest.mark.parametrize("fields, problem", [
    ({"face_score": 0.5}, "is not above the threshold"),  # below the threshold it claims
    ({"face_score": None}, "without its face score and threshold"),
    ({"face_threshold": None}, "without its face score and threshold"),
    ({"face_score": 0.45, "face_threshold": 0.4}, "below the terminal's minimum"),  # a lowered threshold
    ({"face_live": False}, "did not confirm a live face"),
])
def test_face_score_threshold_and_liveness_are_judged(pki, book, fields, problem):
    if "face_threshold" not in fields:
        fields = fields | {"face_threshold": kiosk_face_threshold()}
    checked = check(face_result(pki.holder(), book.issue("s1", "r1", 1)[0], **fields), book, pki)
    assert checked.verified is False
    assert any(problem in p for p in checked.problems), checked.problems


def test_a_score_equal_to_the_threshold_is_no_match(pki, book):
    threshold = kiosk_face_threshold()
    checked = check(face_result(pki.holder(), None, face_score=threshold), book, pki)
    assert checked.verified is False and any("not above" in p for p in checked.problems)


def test_the_terminal_minimum_can_be_set(pki, book):
    lowered = face_result(pki.holder(), book.issue("s1", "r1", 1)[0], face_score=0.5, face_threshold=0.4)
    assert check(lowered, book, pki, min_face_threshold=0.35).verified is True
    stricter = face_result(pki.holder(), book.issue("s1", "r1", 1)[0], face_score=0.99)
    checked = check(stricter, book, pki, min_face_threshold=0.9)
    assert checked.verified is False and any("below the terminal's minimum 0.9" in p for p in checked.problems)


def test_no_manifest_is_a_clear_problem_not_a_crash(pki, book, tmp_path, monkeypatch):
    monkeypatch.setenv("UKETSUKE_MODELS_DIR", str(tmp_path))
    checked = check(face_result(pki.holder(), None, face_threshold=0.6), book, pki)
    assert checked.verified is False
    assert any("no face threshold to judge by" in p and "manifest" in p for p in checked.problems)


def test_visual_and_bare_reads_carry_no_proof(pki, book):
    for method in (Method.VISUAL, Method.NONE):
        result = pin_result(pki.holder(), None).model_copy(update={"method": method})
        assert check(result, book, pki).verified is None


_B64_FIELDS = ("cert_der_b64", "nonce_b64", "genuineness_b64", "cvc_b64", "signature_b64")
#: The parts each method's check depends on: changing any of them must leave the result unverified.
_JUDGED = {Method.PIN: {"cert_der_b64", "nonce_b64", "signature_b64", "cert_status", "card_kind"},
           Method.FACE: {"cert_der_b64", "nonce_b64", "genuineness_b64", "cvc_b64", "cert_status", "card_kind",
                         "face_score", "face_threshold"}}


@pytest.fixture(scope="module")
def honest(pki):
    return {Method.FACE: face_result(pki.holder(), None), Method.PIN: pin_result(pki.holder(), None)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_altered_result_is_judged_never_raises(pki, honest, data):
    """Whatever part of an honest result is changed, the check answers (never with a crash), and a
    change to a part it judges leaves the result unverified."""
    method = data.draw(st.sampled_from([Method.FACE, Method.PIN]))
    field = data.draw(st.sampled_from(_B64_FIELDS + ("cert_status", "card_kind", "face_score", "face_threshold")))
    if field in _B64_FIELDS:
        value = b64(data.draw(st.binary(min_size=6, max_size=180)))  # within every field's bounds
    elif field == "cert_status":
        value = data.draw(st.sampled_from(["expiring", "grace", "unusable"]))
    elif field == "card_kind":
        value = data.draw(st.sampled_from(["android", "iphone"]))
    else:  # all below the kiosk's calibrated threshold
        value = data.draw(st.floats(-1.0, 0.5))
    original = honest[method]
    altered = ResultMessage.model_validate(original.model_dump() | {field: value})  # as the terminal parses it
    verification = check(altered, ChallengeBook(), pki)
    assert verification.verified in (True, False) and all(len(p) <= 240 for p in verification.problems)
    if field in _JUDGED[method] and getattr(altered, field) != getattr(original, field):
        assert verification.verified is False, (field, verification.problems)
