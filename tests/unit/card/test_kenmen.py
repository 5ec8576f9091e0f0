"""券面事項確認AP: the 照合番号B guard, the card face and photo, card genuineness."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from firmware.card.collation import CollationB
from firmware.card.cvc import CardNotGenuine, load_issuer_keys
from firmware.card.kenmen import PhotoError, decode_photo, split_card_face
from firmware.card.mynumber import MyNumberCard
from firmware.errors import (
    CollationBlocked,
    CollationMismatch,
    CollationRefused,
    CollationTriesLow,
    ReadError,
    SecurityStatusNotSatisfied,
)
from hal.sim.card.profile import AID_KENMEN_KAKUNIN, read_counters, write_counter
from hal.sim.card.throwaway_pki import new_rsa_key, pem_public
from tests.unit.card.conftest import TODAY_JST

B_REF = f"{AID_KENMEN_KAKUNIN}/0012"


def collation(digits: str, confident: bool = True, **flags) -> CollationB:
    return CollationB(digits[:6], digits[6:10], digits[10:], confident, **flags)


def sent_collation(reader) -> bool:
    return any(apdu[1] == 0x20 and len(apdu) > 4 for apdu, _ in reader.history)


@pytest.fixture
def tap(reader_for, policy):
    """``tap(info, min_tries_left=6)`` → (a fresh MyNumberCard with a policy over the test's ledger, reader)."""

    def make(info, **policy_options):
        reader = reader_for(info)
        return MyNumberCard(reader.wait_for_card(0), collation_policy=policy(**policy_options)), reader

    return make


def test_right_collation_opens_the_card_face(profile, tap):
    info = profile("card")
    card, reader = tap(info)
    card.verify_collation_b(collation(info.collation_b), today=TODAY_JST)
    face = card.read_card_face()
    assert len(face.birth_date) == 8 and face.birth_date.isdigit()
    assert face.sex in ("1", "2")
    photo = face.photo_greyscale()
    assert photo.dtype == np.uint8 and photo.ndim == 2 and photo.shape == (320, 240)
    assert 60 < photo.mean() < 230 and photo.std() > 20  # a picture, not a blank
    photo[...] = 0
    assert bytes(face.photo_jp2) not in repr(face).encode()
    assert np.array_equal(card.read_photo(), face.photo_greyscale())  # read_photo wipes its own copy
    face.wipe()
    assert not any(face.photo_jp2) and not any(face.name_image)
    assert info.collation_b.encode() not in b"".join(apdu for apdu, _ in reader.history)


def test_card_face_needs_collation_b(profile, tap):
    card, _ = tap(profile("card"))
    with pytest.raises(SecurityStatusNotSatisfied):
        card.read_card_face()


@pytest.mark.parametrize("make", [
    lambda b: collation(b, confident=False),
    lambda b: collation(b, code_confident=False),
    lambda b: collation(b[:13]),                       # incomplete
    lambda b: collation(b[:2] + "13" + b[4:]),         # month 13
    lambda b: collation(b[:4] + "32" + b[6:]),         # day 32
    lambda b: collation(b[:6] + "1999" + b[10:]),      # expiry before cards existed
    lambda b: collation(b[:6] + "20x1" + b[10:]),
    lambda b: collation("000101" + b[6:]),             # era year 00
    lambda b: collation("650101" + b[6:], era="昭和"),  # 昭和65 does not exist
])
def test_policy_refuses_unsure_or_inconsistent_reading_without_spending(profile, tap, make):
    info = profile("card")
    card, reader = tap(info)
    with pytest.raises(CollationRefused):
        card.verify_collation_b(make(info.collation_b), today=TODAY_JST)
    assert not sent_collation(reader)
    assert read_counters(info.directory)[B_REF] == 10


def wrong(digits: str) -> str:
    return digits[:10] + ("1111" if digits.endswith("0000") else "0000")


@pytest.mark.parametrize("minimum", [1, 3, 6, 10])
def test_min_collation_tries_left_is_inclusive(profile, tap, minimum):
    """The counter must be >= min_tries_left: equal is tried, one less is refused without sending."""
    info = profile("card")
    write_counter(info.directory, AID_KENMEN_KAKUNIN, "0012", minimum - 1)
    if minimum > 1:
        card, reader = tap(info, min_tries_left=minimum)
        with pytest.raises(CollationTriesLow) as refused:
            card.verify_collation_b(collation(info.collation_b), today=TODAY_JST)
        assert refused.value.tries_left == minimum - 1 and not sent_collation(reader)
        assert read_counters(info.directory)[B_REF] == minimum - 1
    write_counter(info.directory, AID_KENMEN_KAKUNIN, "0012", minimum)
    card, reader = tap(info, min_tries_left=minimum)
    card.verify_collation_b(collation(info.collation_b), today=TODAY_JST)  # == minimum: tried
    assert sent_collation(reader)
    assert read_counters(info.directory)[B_REF] == 10  # a right number resets the counter


def test_wrong_collation_is_its_own_error_not_a_pin_error(profile, tap):
    info = profile("card")
    card, _ = tap(info)
    with pytest.raises(CollationMismatch) as refused:
        card.verify_collation_b(collation(wrong(info.collation_b)), today=TODAY_JST)
    assert refused.value.tries_left == 9
    assert info.collation_b not in str(refused.value) and wrong(info.collation_b) not in str(refused.value)


def test_wrong_collation_on_the_last_try_is_blocked(profile, tap):
    info = profile("card")
    write_counter(info.directory, AID_KENMEN_KAKUNIN, "0012", 1)
    card, _ = tap(info, min_tries_left=1)
    with pytest.raises(CollationBlocked):
        card.verify_collation_b(collation(wrong(info.collation_b)), today=TODAY_JST)
    assert read_counters(info.directory)[B_REF] == 0


def test_blocked_collation_counter(profile, tap):
    info = profile("card")
    write_counter(info.directory, AID_KENMEN_KAKUNIN, "0012", 0)
    card, reader = tap(info, min_tries_left=1)
    with pytest.raises(CollationBlocked):
        card.collation_b_tries_left()
    with pytest.raises(CollationBlocked):
        card.verify_collation_b(collation(info.collation_b), today=TODAY_JST)
    assert not sent_collation(reader)


def test_genuine_card(profile, tap):
    info = profile("card")
    card, _ = tap(info)
    proof = card.prove_genuine(b"terminal nonce", load_issuer_keys(info.directory / "issuer"), TODAY_JST)
    assert proof.card_certificate.issuer_reference == "6000023"
    assert len(proof.signature) == 256


def test_genuineness_covers_the_nonce_bound_to_the_taps_certificate(profile, tap):
    """The card signs the terminal's nonce *and* this tap's certificate, not the bare nonce (#11)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from firmware.card.genuineness import genuineness_data

    info = profile("card")
    card, _ = tap(info)
    cert_der = card.read_auth_certificate().der
    proof = card.prove_genuine(b"terminal nonce", load_issuer_keys(info.directory / "issuer"), TODAY_JST)
    key = proof.card_certificate.public_key
    assert proof.signed == genuineness_data(b"terminal nonce", cert_der)
    key.verify(proof.signature, genuineness_data(b"terminal nonce", cert_der), padding.PKCS1v15(), hashes.SHA256())
    for other in (b"terminal nonce", genuineness_data(b"terminal nonce", cert_der + b"\x00")):
        with pytest.raises(InvalidSignature):  # neither the bare nonce nor another certificate
            key.verify(proof.signature, other, padding.PKCS1v15(), hashes.SHA256())


def test_untrusted_or_forged_card_is_not_genuine(profile, tap, tmp_path):
    info = profile("card")
    card, _ = tap(info)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "6000023.pem").write_bytes(pem_public(new_rsa_key().public_key()))
    with pytest.raises(CardNotGenuine):
        card.prove_genuine(b"n", load_issuer_keys(stranger), TODAY_JST)
    with pytest.raises(CardNotGenuine):
        card.prove_genuine(b"n", {}, TODAY_JST)
    with pytest.raises(CardNotGenuine):  # outside the CVC's validity
        card.prove_genuine(b"n", load_issuer_keys(info.directory / "issuer"), dt.date(2060, 1, 1))


def test_card_key_swapped_is_not_genuine(profile, tap):
    info = profile("card")
    key_file = info.directory / "keys" / AID_KENMEN_KAKUNIN / "internal.pem"
    from hal.sim.card.throwaway_pki import pem_private
    key_file.write_bytes(pem_private(new_rsa_key()))  # a clone with its own key but a copied CVC
    card, _ = tap(info)
    with pytest.raises(CardNotGenuine):
        card.prove_genuine(b"n", load_issuer_keys(info.directory / "issuer"), TODAY_JST)


def test_tampered_cvc_is_refused(profile, tap):
    info = profile("card")
    path = info.directory / "ef" / AID_KENMEN_KAKUNIN / "0004.bin"
    raw = bytearray(path.read_bytes())
    raw[40] ^= 0x01  # inside the card's public key
    path.write_bytes(bytes(raw))
    card, _ = tap(info)
    with pytest.raises((CardNotGenuine, ReadError)):
        card.prove_genuine(b"n", load_issuer_keys(info.directory / "issuer"), TODAY_JST)


def test_broken_photo_is_a_typed_error():
    with pytest.raises(PhotoError):
        decode_photo(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 50)
    with pytest.raises(PhotoError):
        decode_photo(b"\xff\xd8\xff\xe0 a JPEG, not JPEG 2000")
    with pytest.raises(ReadError):
        split_card_face(b"\xff\x20\x03\xdf\x22\x00")  # no photo


def test_collation_repr_hides_digits(profile):
    info = profile("card")
    assert info.collation_b[:6] not in repr(collation(info.collation_b))


def _ef0002_reads(history) -> list[tuple[int, int]]:
    """(offset, Le) of every READ BINARY sent while EF 0002 was the current file."""
    reads, current = [], None
    for apdu, _ in history:
        if apdu[1] == 0xA4 and apdu[2] == 0x02:
            current = apdu[5:7]
        elif apdu[1] == 0xA4:
            current = None
        elif apdu[1] == 0xB0 and current == b"\x00\x02":
            le = int.from_bytes(apdu[-2:], "big") if len(apdu) == 7 else (apdu[4] or 256)
            reads.append(((apdu[2] << 8) | apdu[3], le or 65536))
    return reads


@pytest.mark.parametrize("options", [{}, {"supports_extended_apdu": False}, {"max_response_bytes": 64}])
def test_read_photo_reads_the_photo_alone(profile, reader_for, policy, options):
    """The face path reads DF27 and the headers before it, not the name and address images."""
    info = profile("card")
    reader = reader_for(info, **options)
    card = MyNumberCard(reader.wait_for_card(0), collation_policy=policy())
    card.verify_collation_b(collation(info.collation_b), today=TODAY_JST)
    photo = card.read_photo()
    reads = _ef0002_reads(reader.history)
    face = card.read_card_face()
    record = info.directory.joinpath("ef", AID_KENMEN_KAKUNIN, "0002.bin").read_bytes()
    try:
        assert np.array_equal(photo, face.photo_greyscale())
        assert sum(le for _, le in reads) <= len(face.photo_jp2) + 128 + 8 * 10
        for image in (face.name_image, face.address_image, face.security_code_image):
            middle = record.index(bytes(image)) + len(image) // 2
            assert not any(offset <= middle < offset + le for offset, le in reads)
    finally:
        photo[...] = 0
        face.wipe()


class _RecordLink:
    """A card that holds one EF 0002 (any bytes), answers SELECT and READ BINARY, nothing else."""

    max_response_bytes = 256
    supports_extended_apdu = False

    def __init__(self, record: bytes):
        self.record = record

    def transmit(self, apdu: bytes):
        if apdu[1] == 0xA4:
            return b"", 0x9000
        offset, le = (apdu[2] << 8) | apdu[3], apdu[4] or 256
        if offset >= len(self.record):
            return b"", 0x6B00
        return self.record[offset:offset + le], 0x9000


def _photo_from(record: bytes) -> bytes:
    from firmware.card.apdu import CardChannel
    from firmware.card.kenmen import KenmenApplication

    return bytes(KenmenApplication(CardChannel(_RecordLink(record))).read_photo_jp2())


def _tlv(tag: int, value: bytes) -> bytes:
    from hal.sim.card.cvc_build import tlv

    return tlv(tag, value)


def test_photo_walk_follows_headers_across_reads_and_refuses_broken_records():
    photo = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(range(256)) * 12
    # the name image is sized so that the next header straddles the first read's end
    items = _tlv(0xDF22, b"19800217") + _tlv(0xDF25, b"n" * 108) + _tlv(0xDF26, b"a" * 1000) + _tlv(0xDF27, photo)
    assert _photo_from(_tlv(0xFF20, items + _tlv(0xDF28, b"s" * 256))) == photo
    with pytest.raises(PhotoError):
        _photo_from(_tlv(0xFF20, _tlv(0xDF22, b"19800217") + _tlv(0xDF25, b"n" * 300)))
    with pytest.raises(ReadError):  # not the card-face record
        _photo_from(_tlv(0x30, items))
    with pytest.raises(ReadError):  # an item claims more than its record holds
        _photo_from(_tlv(0xFF20, b"\xdf\x22\x82\x10\x00" + b"x" * 10))
    with pytest.raises(ReadError):  # the EF ends inside the photo
        _photo_from(_tlv(0xFF20, items)[:-100])
