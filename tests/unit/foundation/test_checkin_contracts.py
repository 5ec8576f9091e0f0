"""The check-in contracts (#10): challenges, context, registration, consent items, proofs and answers;
the reference terminal's registry and proof checks; the visual-check commands."""

import base64
import datetime as dt
import json
from concurrent.futures import Future

import pytest

from firmware.commands import CommandHandler
from firmware.errors import MessageError
from firmware.link.limits import MAX_REQUEST_BYTES, MAX_SMALL_BYTES
from firmware.link.schemas import (
    CONSENT_ITEMS,
    AckMessage,
    ChallengeOffer,
    ChallengeRequest,
    Command,
    CommandName,
    ContextAnswer,
    ContextRequest,
    Eligibility,
    Method,
    RegistrationAnswer,
    RegistrationRequest,
    ResultMessage,
    parse,
)
from terminal.registry import Registry, RegistryError, cert_sha256
from terminal.verify import ChallengeBook, verify_result
from tests.proofs import Pki, face_result, pin_result

CERT = base64.b64encode(b"\x30\x82\x01\x00fake").decode()
NOW = dt.datetime(2026, 3, 1, 1, 2, 3, tzinfo=dt.UTC)


def result(**overrides) -> ResultMessage:
    fields = dict(site="s1", reader="r1", method=Method.PIN, card_kind="card", cert_der_b64=CERT,
                  cert_status="valid")
    fields.update(overrides)
    return ResultMessage(**fields)


@pytest.fixture(scope="module")
def pki():
    return Pki()


# ------------------------------------------------------------------ schemas


def test_every_new_message_round_trips():
    book = ChallengeBook()
    messages = [
        ChallengeRequest(count=4),
        ChallengeOffer(request_id="req-1", challenges=book.issue("s1", "r1", 3)),
        ContextRequest(session_id="0f0e-sess", cert_der_b64=CERT, token_kind="android"),
        ContextAnswer(request_id="a", session_id="b", registered=False, previous_consent_at=NOW,
                      previous_consent={"PharmacistsInfo": 1, "TestInfo": 0}, eligibility=Eligibility.NO_RECORD),
        RegistrationRequest(session_id="s", cert_der_b64=CERT),
        RegistrationAnswer(request_id="a", session_id="b", ok=False, reason="expires_soon"),
        AckMessage(id=result().id, verified=False, problems=["freshness unverified: x"], eligibility="invalid"),
        result(consent={item: {"flag": 1, "time": NOW} for item in CONSENT_ITEMS}, prescription="electronic",
               eligibility_only=False, registration=True, challenge_id="c-1", fresh=True,
               nonce_b64=base64.b64encode(b"n" * 32).decode(), signature_b64="AAAA", face_live=True,
               genuineness_b64="AAAA", cvc_b64="AAAA"),
        Command(cmd=CommandName.VISUAL), Command(cmd=CommandName.VISUAL_NG),
    ]
    for message in messages:
        assert parse(type(message), message.to_json(), MAX_REQUEST_BYTES) == message


def test_old_payloads_still_parse():
    """The kiosk and terminal of before: an ack with only an id, a result with no proof fields."""
    old_ack = json.dumps({"v": 1, "ts": "2026-01-01T00:00:00Z", "id": result().id}).encode()
    ack = parse(AckMessage, old_ack)
    assert ack.verified is None and ack.problems == [] and ack.eligibility is None
    old = {k: v for k, v in json.loads(result().to_json()).items()
           if k in ("v", "ts", "id", "site", "reader", "method", "card_kind", "cert_der_b64", "cert_status",
                    "consent", "proxy", "face_score", "face_threshold", "nonce_b64", "signature_b64",
                    "genuineness_b64")}
    again = parse(ResultMessage, json.dumps(old).encode())
    assert again.fresh is False and again.consent == {} and again.prescription is None
    # a bare bool per item (the session's old dict[str, bool]) reads as a flag without time
    assert result(consent={"PharmacistsInfo": True}).consent["PharmacistsInfo"].flag == 1


@pytest.mark.parametrize("consent, problem", [
    ({"medication": {"flag": 1}}, "ORCA consent items"),
    ({"PharmaceuticalInfo": {"flag": 1}}, "ORCA consent items"),  # the other spelling is not ours
    ({"PharmacistsInfo": {"flag": 4}}, "consent"),
    ({"PharmacistsInfo": {"flag": 1, "extra": 1}}, "a field this version does not know"),
])
def test_consent_keys_and_flags_are_checked(consent, problem):
    payload = json.loads(result().to_json()) | {"consent": consent}
    with pytest.raises(MessageError, match=problem) as caught:
        parse(ResultMessage, json.dumps(payload).encode())
    assert "medication" not in str(caught.value) and "Pharmaceutical" not in str(caught.value)


def test_request_and_answer_limits():
    big = base64.b64encode(b"x" * 6100).decode()  # within the certificate bound (8192 characters)
    request = ContextRequest(session_id="s", cert_der_b64=big, token_kind="card").to_json()
    with pytest.raises(MessageError, match="the limit is"):
        parse(ContextRequest, request, MAX_SMALL_BYTES)
    assert parse(ContextRequest, request, MAX_REQUEST_BYTES).cert_der_b64 == big
    offer = json.loads(ChallengeOffer(request_id="r", challenges=ChallengeBook().issue("s", "r", 8)).to_json())
    offer["challenges"] *= 2
    with pytest.raises(MessageError, match="challenges"):
        parse(ChallengeOffer, json.dumps(offer).encode())
    with pytest.raises(MessageError, match="count"):
        parse(ChallengeRequest, b'{"count": 100}')
    with pytest.raises(MessageError, match="session_id"):
        parse(ContextAnswer, b'{"request_id": "a", "session_id": "<script>"}')
    with pytest.raises(MessageError, match="previous_consent"):
        parse(ContextAnswer, b'{"request_id": "a", "session_id": "b", "previous_consent": {"Medication": 1}}')
    with pytest.raises(MessageError, match="reason"):
        parse(RegistrationAnswer, b'{"request_id": "a", "session_id": "b", "ok": false, "reason": "Free text!"}')


def test_qualification_validity_codes():
    assert [Eligibility.from_qualification_validity(c) for c in (1, 2, 3, 4, 5)] == [
        Eligibility.VALID, Eligibility.INVALID, Eligibility.INVALID, Eligibility.NO_RECORD, None]


# ------------------------------------------------------------------ the terminal's registry


def test_registry_file_and_defaults(tmp_path, pki):
    listed, by_cn, stranger = pki.holder(), pki.holder(), pki.holder()
    from terminal.registry import AuthCertificate, _subject_cn

    cn = _subject_cn(AuthCertificate(by_cn.cert_der))
    path = tmp_path / "registry.toml"
    path.write_text(f'''
[[certificate]]
sha256 = "{cert_sha256(listed.cert_der).upper()}"
registered = false
previous_consent_at = 2025-03-01T10:00:00
eligibility = "invalid"

previous_consent = {{ PharmacistsInfo = 1, DiagnosisInfo = 3 }}

[[certificate]]
subject_cn = "{cn}"
qualification_validity = 4
previous_consent_at = 2025-04-01T10:00:00+09:00
''')
    registry = Registry.load(path)
    context = registry.context(listed.cert_der)
    assert context.registered is False and context.eligibility is Eligibility.INVALID
    assert context.previous_consent_at == dt.datetime(2025, 3, 1, 1, 0, tzinfo=dt.UTC)  # naive = JST
    assert context.previous_consent["PharmacistsInfo"] == 1 and context.previous_consent["DiagnosisInfo"] == 3
    assert context.previous_consent["TestInfo"] == 0 and len(context.previous_consent) == len(CONSENT_ITEMS)
    assert registry.context(by_cn.cert_der).eligibility is Eligibility.NO_RECORD
    assert set(registry.context(by_cn.cert_der).previous_consent.values()) == {1}  # a time alone: 包括同意
    unknown = registry.context(stranger.cert_der)
    assert (unknown.registered, unknown.previous_consent_at, unknown.eligibility) == (True, None, Eligibility.VALID)
    assert registry.context(b"not a certificate").registered is None
    # registration is kept in memory
    assert registry.register(listed.cert_der, pki.now) == (True, None)
    assert registry.context(listed.cert_der).registered is True
    assert registry.register(listed.cert_der, pki.now) == (True, "already_registered")
    assert "registered = false" in path.read_text()  # never written back


@pytest.mark.parametrize("text", ['[[certificate]]\nregistered = false\n', '[[certificate]]\nsha256 = "00"\n',
                                  'nonsense = 1\n', '[[certificate\n',
                                  '[[certificate]]\nsubject_cn = "x"\nprevious_consent = { PharmacistsInfo = 1 }\n',
                                  '[[certificate]]\nsubject_cn = "x"\nprevious_consent_at = 2025-01-01T00:00:00Z\n'
                                  'previous_consent = { Medication = 1 }\n'])
def test_registry_refuses_bad_files(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(RegistryError):
        Registry.load(path)


def test_registration_refused_within_five_days(pki):
    registry = Registry()
    assert registry.register(pki.holder(days_left=4.9).cert_der, pki.now) == (False, "expires_soon")
    assert registry.register(pki.holder(days_left=-1).cert_der, pki.now) == (False, "expired")
    assert registry.register(b"junk", pki.now) == (False, "certificate_unreadable")
    assert registry.register(pki.holder(days_left=6).cert_der, pki.now)[0] is True


# ------------------------------------------------------------------ the terminal's proof checks


def test_pin_proof_over_a_fresh_challenge(pki):
    book, holder = ChallengeBook(), pki.holder()
    challenge = book.issue("s1", "r1", 1)[0]
    first = pin_result(holder, challenge)
    checked = verify_result(first, book, anchors=pki.anchors)
    assert (checked.verified, checked.fresh, checked.problems) == (True, True, ())
    assert verify_result(first, book, anchors=pki.anchors) == checked  # a resend is still fresh
    reused = verify_result(pin_result(holder, challenge), book)
    assert reused.verified is True and not reused.fresh and "used before" in reused.problems[0]


def test_freshness_problems(pki):
    book, holder = ChallengeBook(ttl_s=60), pki.holder()
    none = verify_result(pin_result(holder, None), book)
    assert none.verified is True and not none.fresh and "had no challenge" in none.problems[0]
    other_reader = book.issue("s1", "r2", 1)[0]
    assert "another reader" in verify_result(pin_result(holder, other_reader), book).problems[0]
    late = book.issue("s1", "r1", 1)[0]
    checked = verify_result(pin_result(holder, late), book, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    assert checked.verified and "expired" in checked.problems[0]
    stranger = ChallengeBook().issue("s1", "r1", 1)[0]
    assert "not issued by this terminal" in verify_result(pin_result(holder, stranger), book).problems[0]


def test_forged_and_missing_signatures(pki):
    book, holder = ChallengeBook(), pki.holder()
    forged = verify_result(pin_result(holder, book.issue("s1", "r1", 1)[0], forged=True), book)
    assert forged.verified is False and any("does not verify" in p for p in forged.problems)
    bare = pin_result(holder, None).model_copy(update={"signature_b64": None})
    assert verify_result(bare, book).verified is False
    assert verify_result(result(method=Method.VISUAL), book).verified is None
    assert verify_result(result(method=Method.PIN), book).verified is False  # no nonce at all


def test_face_proof_with_and_without_issuer_keys(pki):
    book, holder = ChallengeBook(), pki.holder()
    without = verify_result(face_result(holder, book.issue("s1", "r1", 1)[0]), book, anchors=pki.anchors)
    assert without.verified is True and without.problems == ("unverified issuer: the terminal has no CVC issuer keys",)
    trusted = verify_result(face_result(holder, book.issue("s1", "r1", 1)[0]), book, pki.issuer_keys,
                            anchors=pki.anchors)
    assert (trusted.verified, trusted.fresh, trusted.problems) == (True, True, ())
    stranger_keys = {ref: pki.card_key.public_key() for ref in pki.issuer_keys}  # the issuer's id, a wrong key
    wrong_issuer = verify_result(face_result(holder, book.issue("s1", "r1", 1)[0]), book, stranger_keys,
                                 anchors=pki.anchors)
    assert wrong_issuer.verified is False and "card certificate" in wrong_issuer.problems[0]
    not_live = verify_result(face_result(holder, None).model_copy(update={"face_live": False}), book,
                             pki.issuer_keys)
    assert not_live.verified is False
    swapped = face_result(holder, book.issue("s1", "r1", 1)[0]).model_copy(
        update={"genuineness_b64": base64.b64encode(b"\x01" * 256).decode()})
    assert verify_result(swapped, book, pki.issuer_keys).verified is False


# ------------------------------------------------------------------ visual-check commands


class _Runner:
    def __init__(self, accept: bool):
        self.accept, self.posted = accept, []

    def post(self, name, token=None, /, **data):
        self.posted.append((name, token))
        future = Future()
        future.set_result(self.accept)
        return future


@pytest.mark.parametrize("name, event", [(CommandName.VISUAL, "visual_requested"),
                                         (CommandName.VISUAL_OK, "visual_ok"),
                                         (CommandName.VISUAL_NG, "visual_ng")])
def test_visual_commands_post_flow_events(name, event):
    for accept in (True, False):
        runner = _Runner(accept)
        assert CommandHandler(runner, lambda: 0)(Command(cmd=name)) == {"accepted": accept}
        assert runner.posted == [(event, None)]
