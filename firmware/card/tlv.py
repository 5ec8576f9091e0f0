"""BER-TLV framing (ISO 7816-4 / X.690 definite lengths): the only ASN.1 the card layer does by hand.

It finds where an object ends (so READ BINARY knows when to stop) and splits the 券面 AP's
``FF20`` record and the ``7F21`` card-verifiable certificate into their items. Certificates
themselves are parsed by ``cryptography``. Every malformed input raises :class:`TlvError` (a
:class:`~firmware.errors.ReadError`); input that is merely cut short raises :class:`TlvIncomplete`
with how many bytes are needed, which is what a chunked reader wants to know.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from firmware.errors import ReadError

log = logging.getLogger(__name__)

MAX_TAG_BYTES = 3
MAX_LENGTH_BYTES = 3  # 16 MB: far beyond any EF; longer length fields are refused as malformed


class TlvError(ReadError, ValueError):
    """Bytes that should be BER-TLV are malformed (bad tag, indefinite or oversized length)."""


class TlvIncomplete(TlvError):
    """The bytes end before the object does; ``needed`` is the smallest total length to go on."""

    def __init__(self, message: str, needed: int):
        super().__init__(message)
        self.needed = needed


@dataclass(frozen=True)
class Tlv:
    """One decoded object: its tag as written (e.g. ``0x7F21``), value, and whole encoding."""

    tag: int
    value: bytes
    raw: bytes

    @property
    def constructed(self) -> bool:
        first = self.tag.to_bytes((self.tag.bit_length() + 7) // 8 or 1, "big")[0]
        return bool(first & 0x20)

    def children(self) -> list[Tlv]:
        """The objects inside a constructed value (raises TlvError if it is not a TLV sequence)."""
        return parse_all(self.value)

    def __repr__(self) -> str:  # values may be personal data: show sizes only
        return f"Tlv(tag=0x{self.tag:X}, {len(self.value)} bytes)"


def read_header(buf: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Decode the tag and length at ``offset``; returns ``(tag, value_length, header_length)``."""
    pos = offset
    if pos >= len(buf):
        raise TlvIncomplete("no tag byte", pos + 1)
    first = buf[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:  # multi-byte tag: more bytes while bit 8 is set
        for count in range(MAX_TAG_BYTES):
            if pos >= len(buf):
                raise TlvIncomplete("tag cut short", pos + 1)
            byte = buf[pos]
            pos += 1
            tag = (tag << 8) | byte
            if not byte & 0x80:
                break
            if count == MAX_TAG_BYTES - 1:
                raise TlvError(f"tag at offset {offset} is longer than {MAX_TAG_BYTES + 1} bytes")
    if pos >= len(buf):
        raise TlvIncomplete("no length byte", pos + 1)
    first_len = buf[pos]
    pos += 1
    if first_len < 0x80:
        length = first_len
    elif first_len == 0x80:
        raise TlvError(f"indefinite length at offset {offset}: not allowed in card data")
    else:
        count = first_len & 0x7F
        if count > MAX_LENGTH_BYTES:
            raise TlvError(f"length field of {count} bytes at offset {offset}: at most {MAX_LENGTH_BYTES}")
        if pos + count > len(buf):
            raise TlvIncomplete("length cut short", pos + count)
        length = int.from_bytes(buf[pos:pos + count], "big")
        pos += count
    return tag, length, pos - offset


def total_length(buf: bytes) -> int:
    """Bytes the object starting at ``buf[0]`` occupies (header + value), from its header alone."""
    _, length, header = read_header(buf)
    return header + length


def parse_one(buf: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode one object at ``offset``; returns it and the offset just after it."""
    tag, length, header = read_header(buf, offset)
    start = offset + header
    end = start + length
    if end > len(buf):
        raise TlvIncomplete(f"value of tag 0x{tag:X} needs {length} bytes, {len(buf) - start} present", end)
    return Tlv(tag, bytes(buf[start:end]), bytes(buf[offset:end])), end


def parse_all(buf: bytes) -> list[Tlv]:
    """Decode a sequence of objects filling ``buf`` exactly."""
    items: list[Tlv] = []
    offset = 0
    while offset < len(buf):
        item, offset = parse_one(buf, offset)
        items.append(item)
    return items


def parse_exact(buf: bytes) -> Tlv:
    """Decode one object and check nothing follows it (padding after an EF's object is cut first)."""
    item, end = parse_one(buf)
    if end != len(buf):
        raise TlvError(f"{len(buf) - end} stray bytes after tag 0x{item.tag:X}")
    return item


def index(items: list[Tlv]) -> dict[int, Tlv]:
    """Map tag → first object with it (later duplicates are ignored)."""
    found: dict[int, Tlv] = {}
    for item in items:
        found.setdefault(item.tag, item)
    return found
