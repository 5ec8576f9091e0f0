"""BER-TLV framing."""

from __future__ import annotations

import pytest

from firmware.card import tlv


def test_headers():
    assert tlv.read_header(b"\x30\x03abc") == (0x30, 3, 2)
    assert tlv.read_header(b"\xff\x20\x82\x01\x00") == (0xFF20, 256, 5)
    assert tlv.read_header(b"\x7f\x21\x81\x80") == (0x7F21, 128, 4)
    assert tlv.read_header(b"\xdf\x27\x83\x01\x00\x00") == (0xDF27, 65536, 6)


@pytest.mark.parametrize("raw, needed", [(b"", 1), (b"\x30", 2), (b"\xff", 2), (b"\x30\x82\x01", 4)])
def test_incomplete_headers_say_how_much_is_needed(raw, needed):
    with pytest.raises(tlv.TlvIncomplete) as caught:
        tlv.read_header(raw)
    assert caught.value.needed == needed


@pytest.mark.parametrize("raw", [b"\x30\x80", b"\x30\x84\x00\x00\x00\x01", b"\x1f\x81\x81\x81\x81\x01\x00"])
def test_malformed(raw):
    with pytest.raises(tlv.TlvError):
        tlv.read_header(raw)


def test_nested_split_and_exact():
    inner = b"\xdf\x22\x02ab" + b"\xdf\x27\x01\x00"
    record = b"\xff\x20" + bytes([len(inner)]) + inner
    outer = tlv.parse_exact(record)
    assert outer.tag == 0xFF20 and outer.constructed
    assert [(c.tag, c.value) for c in outer.children()] == [(0xDF22, b"ab"), (0xDF27, b"\x00")]
    assert "ab" not in repr(outer.children()[0])
    with pytest.raises(tlv.TlvError):
        tlv.parse_exact(record + b"\x00")
    with pytest.raises(tlv.TlvIncomplete):
        tlv.parse_exact(record[:-1])
