"""JPKI over the in-process sim reader: token kinds, certificates, PIN counter, signatures."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from firmware.card.certificate import CertStatus
from firmware.card.jpki import NoPinOnToken, PinFormatError, TokenKind
from firmware.card.mynumber import MyNumberCard
from firmware.errors import NotMyNumberCard, PinBlocked, SecurityStatusNotSatisfied, WrongPin
from hal.sim.card import VirtualCard
from hal.sim.card.profile import AID_JPKI, read_counters
from tests.unit.card.conftest import NOW

PIN_REF = f"{AID_JPKI}/0018"


def tap(reader_for, info, **options) -> tuple[MyNumberCard, object]:
    reader = reader_for(info, **options)
    return MyNumberCard(reader.wait_for_card(0)), reader


@pytest.mark.parametrize("kind, expected", [("card", TokenKind.CARD), ("face-only", TokenKind.FACE_ONLY_CARD),
                                            ("android", TokenKind.ANDROID), ("iphone", TokenKind.IPHONE)])
def test_token_kind(profile, reader_for, kind, expected):
    card, _ = tap(reader_for, profile(kind))
    assert card.read_token_kind() is expected


def test_card_certificate_is_the_profiles(profile, reader_for):
    info = profile("card")
    card, _ = tap(reader_for, info)
    cert = card.read_auth_certificate()
    assert cert.der == (info.directory / "ef" / AID_JPKI / "000A.bin").read_bytes()
    assert cert.subject.startswith("CN=3") and cert.subject.endswith(",C=JP")
    assert cert.not_after == info.auth_not_after
    assert cert.status_at(NOW, card.read_token_kind()) is CertStatus.VALID
    ca = card.read_auth_ca_certificate()
    assert ca.x509.subject == cert.x509.issuer
    cert.x509.verify_directly_issued_by(ca.x509)


def test_wrong_pin_down_to_block_and_counter_persists(profile, reader_for):
    info = profile("card")
    card, reader = tap(reader_for, info)
    assert card.pin_tries_left() == 3
    with pytest.raises(WrongPin) as first:
        card.verify_pin("0000")
    assert first.value.tries_left == 2
    assert read_counters(info.directory)[PIN_REF] == 2
    # A new tap (and a new VirtualCard object, as another process would have) sees the spent try.
    reader.present(VirtualCard(info.directory))
    card = MyNumberCard(reader.wait_for_card(0))
    assert card.pin_tries_left() == 2
    with pytest.raises(WrongPin) as second:
        card.verify_pin("9999")
    assert second.value.tries_left == 1
    with pytest.raises(PinBlocked):
        card.verify_pin("1111")
    with pytest.raises(PinBlocked):
        card.pin_tries_left()
    with pytest.raises(PinBlocked):  # even the right PIN is refused once blocked
        card.verify_pin(info.pin)
    assert read_counters(info.directory)[PIN_REF] == 0
    assert all(b"1111" not in apdu and b"9999" not in apdu for apdu, _ in reader.history)


def test_right_pin_resets_counter_and_signs(profile, reader_for):
    info = profile("card")
    card, _ = tap(reader_for, info)
    with pytest.raises(WrongPin):
        card.verify_pin("0000")
    card.verify_pin(info.pin)
    assert card.pin_tries_left() == 3
    nonce = b"terminal nonce 123"
    signature = card.sign_nonce(nonce)
    card.read_auth_certificate().public_key.verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())


def test_malformed_pin_spends_no_try(profile, reader_for):
    info = profile("card")
    card, reader = tap(reader_for, info)
    for bad in ("123", "12345", "12a4", "１２３４", ""):
        with pytest.raises(PinFormatError):
            card.verify_pin(bad)
    assert card.pin_tries_left() == 3
    assert not any(apdu[1] == 0x20 and len(apdu) > 4 for apdu, _ in reader.history)


def test_sign_needs_pin_and_power_on_clears_it(profile, reader_for):
    info = profile("card")
    card, reader = tap(reader_for, info)
    with pytest.raises(SecurityStatusNotSatisfied):
        card.sign_nonce(b"n")
    card.verify_pin(info.pin)
    card.sign_nonce(b"n")
    reader.remove()
    reader.present(info.directory)
    card = MyNumberCard(reader.wait_for_card(0))
    with pytest.raises(SecurityStatusNotSatisfied):
        card.sign_nonce(b"n")


def test_android_needs_pin_before_certificate(profile, reader_for):
    info = profile("android")
    card, _ = tap(reader_for, info)
    assert card.read_token_kind() is TokenKind.ANDROID
    with pytest.raises(SecurityStatusNotSatisfied):
        card.read_auth_certificate()
    card.verify_pin(info.pin)
    cert = card.read_auth_certificate()
    assert cert.status_at(NOW, TokenKind.ANDROID) is CertStatus.VALID
    assert len(card.sign_nonce(b"abc")) == 256
    with pytest.raises(NotMyNumberCard):  # phones have no 券面 AP
        card.collation_b_tries_left()


def test_iphone_has_no_pin_and_signs_after_face_id(profile, reader_for):
    card, _ = tap(reader_for, profile("iphone"))
    assert card.pin_tries_left() is None
    with pytest.raises(NoPinOnToken):
        card.verify_pin("1234")
    card.read_auth_certificate()
    assert len(card.sign_nonce(b"abc")) == 256


def test_face_only_card(profile, reader_for):
    info = profile("face-only")
    card, _ = tap(reader_for, info)
    assert card.read_token_kind() is TokenKind.FACE_ONLY_CARD
    assert card.read_token_kind().is_physical_card
    assert card.pin_tries_left() is None
    with pytest.raises(NoPinOnToken):
        card.verify_pin("1234")
    card.read_auth_certificate()
    with pytest.raises(SecurityStatusNotSatisfied):  # only 特定機関認証 could use the key
        card.sign_nonce(b"abc")
    assert not (info.directory / "ef" / AID_JPKI / "0001.bin").exists()
    assert card.collation_b_tries_left() == 10


def test_not_a_my_number_card(tmp_path, reader_for):
    (tmp_path / "ef" / "A0000000041010").mkdir(parents=True)
    (tmp_path / "ef" / "A0000000041010" / "0001.bin").write_bytes(b"\x30\x00")
    (tmp_path / "card.toml").write_text('kind = "card"\n')
    reader = reader_for(type("Info", (), {"directory": tmp_path})())
    with pytest.raises(NotMyNumberCard):
        MyNumberCard(reader.wait_for_card(0)).read_token_kind()


def test_reprs_hide_secrets(profile, reader_for):
    info = profile("card")
    card, reader = tap(reader_for, info)
    card.verify_pin(info.pin)
    assert info.pin.encode() not in reader.history[-1][0]
    assert info.pin not in repr(card) and info.pin not in repr(reader.card)
