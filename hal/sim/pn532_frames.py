"""PN532 host-interface framing (UM0701-02 §6.2): parse what a host writes, build what the chip answers.

Normal frame ``00 00 FF LEN LCS TFI PD… DCS 00`` (LEN counts TFI + PD, LEN + LCS ≡ 0, TFI + ΣPD + DCS ≡
0 mod 256); extended frame ``00 00 FF FF FF LENm LENl LCS TFI PD… DCS 00``; ACK ``00 00 FF 00 FF 00``;
NACK ``00 00 FF FF 00 00``; syntax-error frame ``00 00 FF 01 FF 7F 81 00``. Hosts send a preamble of
zero bytes (or 0x55 wake-up bytes) before a frame; it is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

ACK = bytes.fromhex("0000FF00FF00")
NACK = bytes.fromhex("0000FFFF0000")
ERROR_FRAME = bytes.fromhex("0000FF01FF7F8100")
TFI_HOST = 0xD4
TFI_CHIP = 0xD5
#: nfcpy's transport reads a normal frame's LEN byte and treats 0xFF as the extended marker, so the
#: longest normal frame we send carries 254 bytes of TFI + PD.
MAX_NORMAL_DATA = 254


@dataclass(frozen=True)
class HostFrame:
    """One thing the host sent: ``kind`` is ``"info"``, ``"ack"``, ``"nack"`` or ``"bad"``."""

    kind: str
    data: bytes = b""  # TFI + PD for information frames
    wire_bytes: int = 0  # bytes consumed from the stream, preamble included


def split_frame(buffer: bytes | bytearray) -> HostFrame | None:
    """Take the first complete frame from ``buffer``; None when more bytes are needed.

    The caller drops ``frame.wire_bytes`` bytes from its buffer afterwards. Garbage before a start
    code is consumed as part of the next frame (a real PN532 ignores it too).
    """
    start = _find_start(buffer)
    if start is None:
        return None
    head = start + 2  # index after 00 FF
    if len(buffer) < head + 2:
        return None
    length, lcs = buffer[head], buffer[head + 1]
    if length == 0x00 and lcs == 0xFF:
        return HostFrame("ack", wire_bytes=_with_postamble(buffer, head + 2))
    if length == 0xFF and lcs == 0x00:
        return HostFrame("nack", wire_bytes=_with_postamble(buffer, head + 2))
    if length == 0xFF and lcs == 0xFF:
        if len(buffer) < head + 5:
            return None
        length = buffer[head + 2] << 8 | buffer[head + 3]
        if (buffer[head + 2] + buffer[head + 3] + buffer[head + 4]) & 0xFF:
            return HostFrame("bad", wire_bytes=head + 5)
        body = head + 5
    else:
        if (length + lcs) & 0xFF:
            return HostFrame("bad", wire_bytes=head + 2)
        body = head + 2
    end = body + length + 2  # data, DCS, postamble
    if len(buffer) < end:
        return None
    data = bytes(buffer[body : body + length])
    if (sum(data) + buffer[body + length]) & 0xFF or not data:
        return HostFrame("bad", wire_bytes=end)
    return HostFrame("info", data=data, wire_bytes=end)


def _find_start(buffer: bytes | bytearray) -> int | None:
    index = bytes(buffer).find(b"\x00\xff")
    return None if index < 0 else index


def _with_postamble(buffer: bytes | bytearray, index: int) -> int:
    return index + 1 if len(buffer) > index and buffer[index] == 0x00 else index


def build_frame(payload: bytes) -> bytes:
    """An information frame from the chip: ``payload`` is the response code and data (no TFI)."""
    data = bytes([TFI_CHIP]) + payload
    dcs = (-sum(data)) & 0xFF
    if len(data) <= MAX_NORMAL_DATA:
        head = bytes([0x00, 0x00, 0xFF, len(data), (-len(data)) & 0xFF])
    else:
        high, low = len(data) >> 8, len(data) & 0xFF
        head = bytes([0x00, 0x00, 0xFF, 0xFF, 0xFF, high, low, (-(high + low)) & 0xFF])
    return head + data + bytes([dcs, 0x00])
