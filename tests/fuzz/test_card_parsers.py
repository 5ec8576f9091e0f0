"""Hypothesis fuzzing of the card layer's parsers: APDUs, BER-TLV, X.509 DER, CVC, the FF20 record,
and the virtual card's command decoder. Every input either parses or raises the project's typed
error (a ReadError / ApduFormatError / TlvError …) — never a crash. 11,300 examples in all
(5 × 1,500 + 3 × 1,000 + 2 × 400).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.card import tlv
from firmware.card.apdu import ApduFormatError, CardChannel, CommandApdu, ResponseApdu
from firmware.card.certificate import AuthCertificate
from firmware.card.collation import CollationB, CollationPolicy
from firmware.card.cvc import parse_cvc
from firmware.card.jpki import TokenKind
from firmware.card.kenmen import split_card_face
from firmware.errors import CardError, CollationRefused, ReadError
from hal.sim.card.core import Application, CardCore, Pin
from hal.sim.card.cvc_build import build_cvc
from hal.sim.card.cvc_build import tlv as encode_tlv
from hal.sim.card.throwaway_pki import new_rsa_key

FAST = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def valid_cvc() -> bytes:
    issuer, card = new_rsa_key(), new_rsa_key()
    return build_cvc(issuer_key=issuer, issuer_reference="6000023", card_public_key=card.public_key(),
                     holder_reference="0123456789ABCDEF", effective=dt.date(2025, 1, 1),
                     expiry=dt.date(2035, 1, 1))


@pytest.fixture(scope="module")
def valid_der(valid_cvc) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    key = new_rsa_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "fuzz")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def mutate(data: st.DataObject, raw: bytes) -> bytes:
    """Flip, cut or splice bytes of a valid encoding."""
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        choice = data.draw(st.integers(0, 2))
        position = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if choice == 0 and raw:
            raw[position] ^= data.draw(st.integers(1, 255))
        elif choice == 1:
            raw = raw[:position]
        else:
            raw[position:position] = data.draw(st.binary(max_size=8))
    return bytes(raw)


@FAST
@given(st.binary(max_size=300))
def test_command_apdu_parse_never_crashes(raw):
    try:
        command = CommandApdu.parse(raw)
    except ApduFormatError:
        return
    assert CommandApdu.parse(command.to_bytes()) == command


@FAST
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=400),
       st.one_of(st.none(), st.integers(1, 65536)), st.booleans())
def test_command_apdu_round_trip(ins, p1, data, le, extended):
    command = CommandApdu(0x00, ins, p1, 0x00, data, le, extended)
    parsed = CommandApdu.parse(command.to_bytes())
    assert (parsed.data, parsed.le) == (data, le)


@FAST
@given(st.binary(max_size=300))
def test_tlv_parsers_raise_only_tlv_errors(raw):
    try:
        items = tlv.parse_all(raw)
    except tlv.TlvError:
        pass
    else:
        assert b"".join(item.raw for item in items) == raw
    try:
        length = tlv.total_length(raw)
    except tlv.TlvIncomplete as exc:
        assert exc.needed > len(raw)
    except tlv.TlvError:
        pass
    else:
        assert length >= 2


@FAST
@given(st.binary(min_size=0, max_size=300))
def test_response_apdu(raw):
    try:
        response = ResponseApdu.parse(raw)
    except ApduFormatError:
        assert len(raw) < 2
    else:
        assert 0 <= response.sw <= 0xFFFF


@SLOW
@given(st.data())
def test_cvc_parse_of_mutations(valid_cvc, data):
    raw = mutate(data, valid_cvc) if data.draw(st.booleans()) else data.draw(st.binary(max_size=200))
    try:
        parse_cvc(raw)
    except ReadError:
        pass


@SLOW
@given(st.data())
def test_x509_of_mutations(valid_der, data):
    raw = mutate(data, valid_der) if data.draw(st.booleans()) else data.draw(st.binary(max_size=200))
    try:
        cert = AuthCertificate(raw)
    except ReadError:
        return
    assert cert.subject is not None and cert.public_key.key_size > 0
    cert.status_at(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), TokenKind.CARD)


@MEDIUM
@given(st.data())
def test_card_face_record_of_mutations(data):
    items = b"".join(encode_tlv(tag, data.draw(st.binary(max_size=20)))
                     for tag in (0xDF22, 0xDF23, 0xDF27, 0xDF29))
    raw = mutate(data, encode_tlv(0xFF20, items))
    try:
        face = split_card_face(raw)
    except ReadError:
        return
    assert isinstance(face.photo_jp2, bytearray)


def _core() -> CardCore:
    app = Application(bytes.fromhex("D392F000260100000001"), {"000A": b"\x30\x03\x02\x01\x05" + b"\x00" * 300},
                      {}, {"0018": Pin(b"1234", 3, 3)}, {"0017": ("0018", lambda data: b"\x01" * 256)},
                      internal_key=lambda data: b"\x02" * 256)
    return CardCore([app], get_response=True, exact_le=True)


@FAST
@given(st.lists(st.binary(min_size=0, max_size=270), max_size=6))
def test_virtual_card_answers_anything(apdus):
    core = _core()
    core.process(bytes.fromhex("00A4040C0AD392F000260100000001"))
    for apdu in apdus:
        answer = core.process(apdu)
        assert len(answer) >= 2


class FuzzLink:
    max_response_bytes = 256
    supports_extended_apdu = False
    atr = b""

    def __init__(self, answers):
        self.answers = list(answers)

    def transmit(self, apdu):
        if not self.answers:
            return b"", 0x6B00
        data, sw = self.answers.pop(0)
        return data, sw


@MEDIUM
@given(st.lists(st.tuples(st.binary(max_size=64), st.sampled_from([0x9000, 0x6282, 0x6B00, 0x6C10, 0x6110,
                                                                    0x6982, 0x6A82, 0x6700, 0x6100])),
                max_size=12))
def test_chunked_reader_over_a_hostile_card(answers):
    try:
        raw = CardChannel(FuzzLink(answers)).read_object("FUZZ", limit=4096)
    except CardError:  # ReadError, SecurityStatusNotSatisfied, …: typed, never a crash
        return
    assert tlv.total_length(raw) == len(raw)


@MEDIUM
@given(st.text(max_size=8), st.text(max_size=5), st.text(max_size=5), st.booleans(),
       st.one_of(st.none(), st.sampled_from(["昭和", "平成", "令和", "明治"])), st.integers(0, 10))
def test_collation_policy_never_crashes(birth, year, code, confident, era, tries):
    collation = CollationB(birth, year, code, confident, era=era)
    policy = CollationPolicy(ledger=None)
    try:
        policy.check_reading(collation, dt.date(2026, 11, 20))
        policy.check_counter(tries)
    except CollationRefused:
        return
    assert tries >= policy.min_tries_left and collation.all_confident and len(collation.digits) == 14
