"""A tiny ISO 7816-4 file-system card with the VirtualCard interface, for transport tests only.

It exists so that the transports (vpcd, PN532 emulator, pyscard and nfcpy backends) can be tested
on their own; the real virtual card is ``hal.sim.card.VirtualCard`` (card-core). It answers SELECT by
AID and by FID, READ BINARY (short and extended Le), VERIFY with a retry counter, and an ECHO
instruction (``80 EE``) that returns its data, so frames of any size can be sent both ways.
"""

from __future__ import annotations

SW_OK = b"\x90\x00"


class StandInCard:
    ATR = bytes.fromhex("3B8880010000000000718100F9")

    def __init__(self, files: dict[tuple[bytes, int], bytes], pin: bytes = b"1234", tries: int = 3) -> None:
        self.files = files
        self.pin = pin
        self.tries = tries
        self.powered_on = 0
        self.apdus: list[bytes] = []
        self._aid: bytes | None = None
        self._ef: int | None = None

    @property
    def atr(self) -> bytes:
        return self.ATR

    def power_on(self) -> None:
        self.powered_on += 1
        self._aid = self._ef = None

    def process(self, apdu: bytes) -> bytes:
        self.apdus.append(bytes(apdu))
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        if ins == 0xA4 and p1 == 0x04:
            aid = body[1 : 1 + body[0]]
            if not any(key[0] == aid for key in self.files):
                return b"\x6a\x82"
            self._aid, self._ef = aid, None
            return SW_OK
        if ins == 0xA4 and p1 == 0x02:
            fid = int.from_bytes(body[1:3], "big")
            if (self._aid, fid) not in self.files and fid != 0x0018:
                return b"\x6a\x82"
            self._ef = fid
            return SW_OK
        if ins == 0xB0:
            data = self.files.get((self._aid, self._ef))
            if data is None:
                return b"\x69\x86"
            offset = (p1 & 0x7F) << 8 | p2
            if len(body) == 3 and body[0] == 0:
                le = int.from_bytes(body[1:], "big") or 65536
            else:
                le = body[0] if body else 256
                le = le or 256
            chunk = data[offset : offset + le]
            return chunk + (SW_OK if len(chunk) == le or offset + len(chunk) >= len(data) else b"\x62\x82")
        if ins == 0x20:
            if self.tries == 0:
                return b"\x69\x84"
            if len(body) == 0:
                return bytes([0x63, 0xC0 | self.tries])
            if body[1 : 1 + body[0]] == self.pin:
                self.tries = 3
                return SW_OK
            self.tries -= 1
            return bytes([0x63, 0xC0 | self.tries])
        if cla == 0x80 and ins == 0xEE:
            return (body[1 : 1 + body[0]] if body else b"") + SW_OK
        return b"\x6d\x00"
