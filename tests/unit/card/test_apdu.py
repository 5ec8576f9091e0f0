"""APDU encoding, status-word mapping, chunked reads and the 61xx / 6Cxx paths over the virtual card."""

from __future__ import annotations

import pytest

from firmware.card import tlv
from firmware.card.apdu import ApduFormatError, CardChannel, CommandApdu, FileNotFound, ResponseApdu, check_sw
from firmware.card.mynumber import MyNumberCard
from firmware.errors import PinBlocked, ReadError, SecurityStatusNotSatisfied, WrongPin
from hal.sim.card.profile import AID_JPKI, CARD_TOML


@pytest.mark.parametrize("command, encoded", [
    (CommandApdu(0x00, 0x20, 0x00, 0x80), "00200080"),
    (CommandApdu(0x00, 0xB0, 0x01, 0x02, le=256), "00b0010200"),
    (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=251), "00b00000fb"),
    (CommandApdu(0x00, 0xA4, 0x02, 0x0C, b"\x00\x0a"), "00a4020c02000a"),
    (CommandApdu(0x80, 0x2A, 0x00, 0x80, b"\x01\x02", le=256), "802a008002010200"),
    (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=65536, extended=True), "00b00000000000"),
    (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=1000), "00b000000003e8"),
    (CommandApdu(0x80, 0x2A, 0x00, 0x00, b"\xaa" * 300, le=256), "802a000000012c" + "aa" * 300 + "0100"),
])
def test_encode_and_parse_round_trip(command, encoded):
    assert command.to_bytes().hex() == encoded
    parsed = CommandApdu.parse(bytes.fromhex(encoded))
    assert parsed.to_bytes() == command.to_bytes()


@pytest.mark.parametrize("raw", ["", "00", "00a404", "00a4040c05aabb", "00a40400000005aa", "00b00000000002aa"])
def test_malformed_commands(raw):
    with pytest.raises(ApduFormatError):
        CommandApdu.parse(bytes.fromhex(raw))


def test_response_parse_and_masking():
    assert ResponseApdu.parse(b"\x01\x90\x00") == ResponseApdu(b"\x01", 0x9000)
    with pytest.raises(ApduFormatError):
        ResponseApdu.parse(b"\x90")
    verify = CommandApdu(0x00, 0x20, 0x00, 0x80, b"1234", sensitive=True)
    assert "31 32" not in verify.masked_hex() and "1234" not in repr(verify)


@pytest.mark.parametrize("sw, error, attrs", [
    (0x63C2, WrongPin, {"tries_left": 2}),
    (0x63C0, PinBlocked, {}),
    (0x6984, PinBlocked, {}),
    (0x6983, PinBlocked, {}),
    (0x6982, SecurityStatusNotSatisfied, {}),
    (0x6A82, FileNotFound, {"sw": 0x6A82}),
    (0x6A86, ReadError, {"sw": 0x6A86}),
    (0x6700, ReadError, {"sw": 0x6700}),
])
def test_status_words_map_to_typed_errors(sw, error, attrs):
    with pytest.raises(error) as caught:
        check_sw(sw, "TEST")
    for name, value in attrs.items():
        assert getattr(caught.value, name) == value
    check_sw(0x9000, "TEST")


def set_toml(directory, text_from: str, text_to: str):
    path = directory / CARD_TOML
    path.write_text(path.read_text().replace(text_from, text_to))


def expected_cert(info) -> bytes:
    return (info.directory / "ef" / AID_JPKI / "000A.bin").read_bytes()


def test_short_chunks_of_251_on_pn532_like_links(profile, reader_for):
    info = profile("card")
    reader = reader_for(info, max_response_bytes=251, supports_extended_apdu=False)
    cert = MyNumberCard(reader.wait_for_card(0)).read_auth_certificate()
    assert cert.der == expected_cert(info)
    reads = [apdu for apdu, _ in reader.history if apdu[1] == 0xB0]
    assert len(reads) == -(-len(cert.der) // 251)
    assert all(len(apdu) == 5 and (apdu[4] or 256) <= 251 for apdu in reads)


def test_one_extended_read_where_allowed(profile, reader_for):
    info = profile("card")
    reader = reader_for(info)
    assert MyNumberCard(reader.wait_for_card(0)).read_auth_certificate().der == expected_cert(info)
    reads = [apdu for apdu, _ in reader.history if apdu[1] == 0xB0]
    assert reads == [bytes.fromhex("00b00000000000")]


def test_extended_refused_by_the_ap_falls_back_to_short(profile, reader_for):
    info = profile("card")
    set_toml(info.directory, "extended_apdu = true", "extended_apdu = false")
    reader = reader_for(info)
    assert MyNumberCard(reader.wait_for_card(0)).read_auth_certificate().der == expected_cert(info)
    sws = [sw for apdu, sw in reader.history if apdu[1] == 0xB0]
    assert sws[0] == 0x6700 and set(sws[1:]) == {0x9000}


def test_get_response_and_exact_le_quirks(profile, reader_for):
    info = profile("card")
    set_toml(info.directory, "get_response = false", "get_response = true")
    set_toml(info.directory, "exact_le = false", "exact_le = true")
    reader = reader_for(info, supports_extended_apdu=False)
    card = MyNumberCard(reader.wait_for_card(0))
    assert card.read_token_kind().value == "card"
    card.channel.select_file(b"\x00\x06")
    assert len(card.channel.read_fixed(64, "TEST")) == 32  # EF 0006 is 32 bytes: 6C20, then 6120
    assert card.read_auth_certificate().der == expected_cert(info)
    card.verify_pin(info.pin)
    assert len(card.sign_nonce(b"x")) == 256
    sws = {sw >> 8 for _, sw in reader.history}
    assert {0x61, 0x6C} <= sws
    assert any(apdu[1] == 0xC0 for apdu, _ in reader.history)


class TruncatingLink:
    """A link whose card answers READ BINARY with a DER header promising more than the EF holds."""

    max_response_bytes = 256
    supports_extended_apdu = False
    atr = b""

    def __init__(self, content: bytes):
        self.content = content

    def transmit(self, apdu: bytes):
        command = CommandApdu.parse(apdu)
        offset = (command.p1 << 8) | command.p2
        if offset >= len(self.content):
            return b"", 0x6B00
        return self.content[offset:offset + (command.le or 256)], 0x9000


@pytest.mark.parametrize("content", [
    b"\x30\x82\x01\x00" + b"\x00" * 100,     # EF shorter than its DER length
    b"\x30\x80\x00\x00",                     # indefinite length
    b"\x30\x85\x01\x02\x03\x04\x05",         # oversized length field
    b"\x30\x82\x7f\xff" + b"\x00" * 10,      # beyond the limit
])
def test_read_object_refuses_broken_efs(content):
    with pytest.raises(ReadError):
        CardChannel(TruncatingLink(content)).read_object("TEST", limit=4096)


def test_read_object_cuts_padding():
    content = tlv.Tlv(0x30, b"\x01" * 300, b"").value
    der = b"\x30\x82\x01\x2c" + content
    assert CardChannel(TruncatingLink(der + b"\xff" * 40)).read_object("TEST") == der
