"""The virtual card at the APDU level, as third-party JPKI readers drive it, and the generator's output."""

from __future__ import annotations

import datetime as dt
import importlib.util
import tomllib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from firmware.card.jpki import sha256_digest_info
from hal.errors import BadBackend
from hal.nfc.sim import open_reader
from hal.sim.card import VirtualCard
from hal.sim.card.generator import make_profile
from hal.sim.card.profile import AID_JPKI, ProfileError, read_counters
from tests.unit.card.conftest import NOW

SELECT_JPKI = bytes.fromhex("00A4040C0A") + bytes.fromhex(AID_JPKI)


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


@pytest.fixture
def card(profile):
    info = profile("card")
    virtual = VirtualCard(info.directory)
    virtual.power_on()
    return virtual, info


def test_atr_is_a_pcsc_contactless_type_b_atr(card):
    virtual, _ = card
    atr = virtual.atr
    assert atr[:4] == bytes.fromhex("3B888001")
    check = 0
    for byte in atr[1:]:
        check ^= byte
    assert check == 0  # TCK makes the XOR of T0..TCK zero
    assert virtual.power_on() == atr


def test_opensc_jpki_driver_sequence(card):
    """What OpenSC's card-jpki.c does: SELECT AP, SELECT 000A, read 4 bytes for the size, tries, sign."""
    virtual, info = card
    assert sw(virtual.process(SELECT_JPKI)) == 0x9000
    assert sw(virtual.process(bytes.fromhex("00A4020C02000A"))) == 0x9000
    head = virtual.process(bytes.fromhex("00B0000004"))
    assert sw(head) == 0x9000 and head[0] == 0x30 and head[1] == 0x82
    size = (head[2] << 8 | head[3]) + 4
    assert size == len((info.directory / "ef" / AID_JPKI / "000A.bin").read_bytes())
    assert sw(virtual.process(bytes.fromhex("00A4020C020018"))) == 0x9000
    assert virtual.process(bytes.fromhex("00200080")) == bytes.fromhex("63C3")
    assert sw(virtual.process(bytes.fromhex("002000800431323334"))) == 0x9000
    assert sw(virtual.process(bytes.fromhex("00A4020C020017"))) == 0x9000
    digest_info = sha256_digest_info(b"data")
    answer = virtual.process(bytes.fromhex("802A0080") + bytes([len(digest_info)]) + digest_info + b"\x00")
    assert sw(answer) == 0x9000 and len(answer) == 258
    cert = x509.load_der_x509_certificate((info.directory / "ef" / AID_JPKI / "000A.bin").read_bytes())
    cert.public_key().verify(answer[:-2], b"data", padding.PKCS1v15(), hashes.SHA256())


def test_myna_style_header_then_le00_chunks(card):
    """jpki/myna reads 7 bytes, learns the length, then Le=00 (256) chunks from offset 7."""
    virtual, info = card
    virtual.process(SELECT_JPKI)
    virtual.process(bytes.fromhex("00A4020C02000B"))
    data = virtual.process(bytes.fromhex("00B0000007"))[:-2]
    offset = 7
    expected = (info.directory / "ef" / AID_JPKI / "000B.bin").read_bytes()
    while offset < len(expected):
        chunk = virtual.process(bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, 0x00]))
        assert sw(chunk) == 0x9000
        data += chunk[:-2]
        offset += len(chunk) - 2
    assert data == expected


@pytest.mark.parametrize("apdu, expected", [
    ("00A4040C05A000000001", 0x6A82),   # unknown AP
    ("00B0000010", 0x6986),             # no current EF
    ("00A4020C020099", 0x6A82),         # no AP selected yet → not found
    ("00200080", 0x6986),
    ("802A00800100", 0x6985),           # no AP: conditions not satisfied
    ("00CA000000", 0x6D00),
    ("B0B0000010", 0x6E00),
    ("00A4", 0x6700),
])
def test_status_words_before_selection(card, apdu, expected):
    virtual, _ = card
    assert sw(virtual.process(bytes.fromhex(apdu))) == expected


@pytest.mark.parametrize("apdu, expected", [
    ("00B07FFF10", 0x6B00),             # offset past the EF
    ("00B0800010", 0x6A86),             # short-EF addressing unsupported
    ("00A4020C03000A00", 0x6700),
    ("00A4030C02000A", 0x6A86),
    ("00200180", 0x6A86),
])
def test_status_words_in_jpki(card, apdu, expected):
    virtual, _ = card
    virtual.process(SELECT_JPKI)
    virtual.process(bytes.fromhex("00A4020C02000A"))
    assert sw(virtual.process(bytes.fromhex(apdu))) == expected


def test_private_key_and_pin_efs_are_not_readable(card):
    virtual, _ = card
    virtual.process(SELECT_JPKI)
    for fid in ("0017", "0018"):
        virtual.process(bytes.fromhex("00A4020C02" + fid))
        assert sw(virtual.process(bytes.fromhex("00B0000000"))) == 0x6981


def test_counter_written_before_the_answer(card):
    virtual, info = card
    virtual.process(SELECT_JPKI)
    virtual.process(bytes.fromhex("00A4020C020018"))
    assert virtual.process(bytes.fromhex("002000800439393939")) == bytes.fromhex("63C2")
    assert read_counters(info.directory)[f"{AID_JPKI}/0018"] == 2
    assert "9999" not in repr(virtual) and "1234" not in repr(virtual)


def test_generated_certificate_looks_like_jpki(card):
    _, info = card
    cert = x509.load_der_x509_certificate((info.directory / "ef" / AID_JPKI / "000A.bin").read_bytes())
    assert cert.public_key().key_size == 2048
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert len(cn) == 23 and cn.isalnum()
    assert "TEST" in cert.issuer.rfc4514_string() and "JPKI for user authentication" in cert.issuer.rfc4514_string()
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert policies.critical and policies.value[0].policy_identifier.dotted_string == "1.2.392.200149.8.5.1.3.30"
    cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert (cert.not_valid_after_utc.hour, cert.not_valid_after_utc.minute) == (14, 59)  # 23:59 JST


def test_profile_errors(tmp_path):
    with pytest.raises(ProfileError):
        VirtualCard(tmp_path)
    (tmp_path / "card.toml").write_text('kind = "watch"\n')
    with pytest.raises(ProfileError):
        VirtualCard(tmp_path)
    with pytest.raises(BadBackend):
        open_reader(str(tmp_path / "missing"))
    with pytest.raises(ProfileError):
        make_profile(tmp_path / "x", kind="watch")


@pytest.mark.skipif(importlib.util.find_spec("hal.sim.card_face") is None, reason="card-face renderer absent")
def test_card_face_image_matches_collation(tmp_path, ca_dir):
    info = make_profile(tmp_path / "face", now=NOW, ca_dir=ca_dir, seed=3, card_face=True)
    assert info.card_face_png is not None and info.card_face_png.stat().st_size > 10_000
    assert len(info.collation_b) == 14 and info.collation_b.isdigit()


def test_generator_without_the_card_face_renderer(tmp_path, ca_dir, monkeypatch):
    from hal.sim.card import generator

    real_import = generator.importlib.import_module

    def no_card_face(name, *args):
        if name == "hal.sim.card_face":
            raise ImportError(name)
        return real_import(name, *args)

    monkeypatch.setattr(generator.importlib, "import_module", no_card_face)
    info = make_profile(tmp_path / "plain", now=NOW, ca_dir=ca_dir, seed=5, card_face=True)
    assert info.card_face_png is None and not (tmp_path / "plain" / "card_face.png").exists()
    birth = read_info(info.directory)["birth_date"]
    era_year = int(info.collation_b[:2])
    assert info.collation_b[2:6] == birth[5:7] + birth[8:10]
    assert era_year == generator.era_year(dt.date.fromisoformat(birth))


def read_info(directory):
    return tomllib.loads((directory / "card.toml").read_text())["info"]
