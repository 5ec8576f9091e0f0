"""ISO 7816-4 APDUs over a :class:`hal.contracts.CardLink`: build, parse, chunked reads, status words.

:class:`CardChannel` is what the JPKI and 券面 code talk to. It handles the transport quirks the
same way on every reader (``61xx`` → GET RESPONSE, ``6Cxx`` → resend with the card's Le), reads
an EF in chunks sized by the link (251 on PN532 to avoid ISO-DEP chaining, 256 on PC/SC, one
extended read where both reader and AP allow it) until the BER/DER object it holds is complete,
and turns status words into the typed errors of :mod:`firmware.errors`. ``CardRemoved`` from the
link passes through untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from firmware.card import tlv
from firmware.errors import (
    CardError,
    NotMyNumberCard,
    PinBlocked,
    ReadError,
    SecurityStatusNotSatisfied,
    WrongPin,
)
from hal.contracts import CardLink

log = logging.getLogger(__name__)
TRACE = logging.DEBUG - 1

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282
SW_WRONG_LENGTH = 0x6700
MAX_OFFSET = 0x7FFF  # READ BINARY offsets are 15 bits
MAX_GET_RESPONSE = 64  # a card asking for more GET RESPONSE rounds than this is broken

SW_TEXT = {
    0x6700: "wrong length",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6984: "reference data not usable (blocked)",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6A80: "incorrect data",
    0x6A82: "file or application not found",
    0x6A86: "incorrect P1/P2",
    0x6B00: "offset outside the EF",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
}


class ApduFormatError(ReadError, ValueError):
    """An APDU (command or response) is malformed: too short, or lengths that do not add up."""


class FileNotFound(ReadError):
    """SW 6A82: the card has no such EF or application."""


@dataclass(frozen=True)
class CommandApdu:
    """One command APDU. ``le`` is None (no response data expected) or 1..65536.

    ``sensitive`` marks commands whose data is a secret (VERIFY): repr and logs mask it.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False
    sensitive: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ApduFormatError(f"{name} must be a byte (0..255), not {getattr(self, name)}")
        if len(self.data) > 65535:
            raise ApduFormatError(f"command data of {len(self.data)} bytes: at most 65535")
        if self.le is not None and not 1 <= self.le <= 65536:
            raise ApduFormatError(f"Le must be 1..65536 (or None), not {self.le}")

    @property
    def is_extended(self) -> bool:
        return self.extended or len(self.data) > 255 or (self.le is not None and self.le > 256)

    def to_bytes(self) -> bytes:
        """Encode as short or, when needed or asked for, extended (ISO 7816-4 cases 1–4)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if not self.is_extended:
            body = bytes((len(self.data),)) + self.data if self.data else b""
            if self.le is not None:
                body += bytes((self.le & 0xFF,))  # 256 → 00
            return header + body
        body = b""
        if self.data:
            body = b"\x00" + len(self.data).to_bytes(2, "big") + self.data
        if self.le is not None:
            le = (self.le & 0xFFFF).to_bytes(2, "big")  # 65536 → 00 00
            body += le if self.data else b"\x00" + le
        return header + body

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode a command APDU (short or extended); raises :class:`ApduFormatError`."""
        raw = bytes(raw)
        n = len(raw)
        if n < 4:
            raise ApduFormatError(f"a command APDU has at least 4 bytes, not {n}")
        cla, ins, p1, p2 = raw[:4]
        if n == 4:
            return cls(cla, ins, p1, p2)
        if n == 5:
            return cls(cla, ins, p1, p2, le=raw[4] or 256)
        if raw[4]:
            lc = raw[4]
            if n == 5 + lc:
                return cls(cla, ins, p1, p2, raw[5:])
            if n == 6 + lc:
                return cls(cla, ins, p1, p2, raw[5:5 + lc], le=raw[-1] or 256)
            raise ApduFormatError(f"short APDU with Lc={lc} cannot be {n} bytes long")
        if n == 7:
            return cls(cla, ins, p1, p2, le=int.from_bytes(raw[5:7], "big") or 65536, extended=True)
        if n < 7:
            raise ApduFormatError(f"extended APDU cut short at {n} bytes")
        lc = int.from_bytes(raw[5:7], "big")
        if lc == 0:
            raise ApduFormatError("extended APDU with Lc=0")
        if n == 7 + lc:
            return cls(cla, ins, p1, p2, raw[7:], extended=True)
        if n == 9 + lc:
            return cls(cla, ins, p1, p2, raw[7:7 + lc], le=int.from_bytes(raw[-2:], "big") or 65536,
                       extended=True)
        raise ApduFormatError(f"extended APDU with Lc={lc} cannot be {n} bytes long")

    def masked_hex(self) -> str:
        """Hex for logs, with the data of sensitive commands replaced by ``**``."""
        raw = self.to_bytes()
        if self.sensitive and self.data:
            head = 7 if self.is_extended else 5
            return raw[:head].hex(" ") + " " + " ".join("**" for _ in self.data)
        return raw.hex(" ")

    def __repr__(self) -> str:
        data = f"<{len(self.data)} bytes hidden>" if self.sensitive else self.data.hex()
        return (f"CommandApdu({self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}, data={data}, "
                f"le={self.le})")


@dataclass(frozen=True)
class ResponseApdu:
    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split response data and SW1 SW2; raises :class:`ApduFormatError` under 2 bytes."""
        raw = bytes(raw)
        if len(raw) < 2:
            raise ApduFormatError(f"a response APDU has at least 2 bytes (SW1 SW2), not {len(raw)}")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    def __repr__(self) -> str:
        return f"ResponseApdu({len(self.data)} bytes, sw={self.sw:04X})"


def describe_sw(sw: int) -> str:
    if 0x63C0 <= sw <= 0x63CF:
        return f"verification failed, {sw & 0xF} tries left"
    return SW_TEXT.get(sw, "unexpected status")


def check_sw(sw: int, action: str) -> None:
    """Raise the typed error for a status word that is not success (``action`` goes in the message)."""
    if sw == SW_OK:
        return
    message = f"{action}: card answered {sw:04X} ({describe_sw(sw)})"
    if sw == 0x63C0:
        raise PinBlocked(f"{action}: wrong, and the retry counter is now at zero (63C0)")
    if 0x63C1 <= sw <= 0x63CF:
        raise WrongPin(sw & 0x0F, f"{action}: wrong, {sw & 0x0F} tries left")
    if sw in (0x6983, 0x6984):
        raise PinBlocked(message)
    if sw == 0x6982:
        raise SecurityStatusNotSatisfied(message)
    if sw == 0x6A82:
        raise FileNotFound(message, sw=sw)
    raise ReadError(message, sw=sw)


class CardChannel:
    """APDU exchange with one card over a :class:`CardLink`, the same on every reader."""

    def __init__(self, link: CardLink):
        self.link = link
        self.chunk_bytes = max(16, min(int(link.max_response_bytes), 256))
        self.extended_reads = bool(link.supports_extended_apdu)

    # ------------------------------------------------------------------ raw exchange

    def send(self, command: CommandApdu) -> ResponseApdu:
        """Send one command, following ``61xx`` (GET RESPONSE) and ``6Cxx`` (resend with Le)."""
        response = self._exchange(command)
        if response.sw >> 8 == 0x6C:
            exact = response.sw & 0xFF or 256
            command = CommandApdu(command.cla, command.ins, command.p1, command.p2, command.data, exact,
                                  sensitive=command.sensitive)
            response = self._exchange(command)
        data = bytearray(response.data)
        rounds = 0
        while response.sw >> 8 == 0x61:
            rounds += 1
            if rounds > MAX_GET_RESPONSE:
                raise ReadError("card keeps answering 61xx: GET RESPONSE never ends", sw=response.sw)
            response = self._exchange(CommandApdu(0x00, 0xC0, 0x00, 0x00, le=response.sw & 0xFF or 256))
            data += response.data
        return ResponseApdu(bytes(data), response.sw)

    def _exchange(self, command: CommandApdu) -> ResponseApdu:
        if log.isEnabledFor(TRACE):
            log.log(TRACE, ">>> %s", command.masked_hex())
        data, sw = self.link.transmit(command.to_bytes())
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "<<< %d bytes %04X", len(data), sw)
        return ResponseApdu(bytes(data), int(sw))

    # ------------------------------------------------------------------ ISO commands

    def select_application(self, aid: bytes, name: str) -> None:
        """SELECT by AID; an absent application raises :class:`NotMyNumberCard`."""
        response = self.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid))
        if response.sw == 0x6A82:
            raise NotMyNumberCard(f"no {name} on this card (SELECT {aid.hex().upper()} → 6A82)")
        check_sw(response.sw, f"SELECT {name}")

    def select_file(self, fid: bytes) -> None:
        """SELECT EF by file identifier (two bytes)."""
        response = self.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid))
        check_sw(response.sw, f"SELECT EF {fid.hex().upper()}")

    def read_binary(self, offset: int, length: int, extended: bool = False) -> ResponseApdu:
        """One READ BINARY at ``offset`` (15 bits) for ``length`` bytes (≤ 256, or ≤ 65536 extended)."""
        if not 0 <= offset <= MAX_OFFSET:
            raise ReadError(f"READ BINARY offset {offset} is beyond 15 bits")
        return self.send(CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=length, extended=extended))

    def read_fixed(self, length: int, action: str) -> bytes:
        """Read up to ``length`` bytes from offset 0 of the current EF (for short, fixed EFs)."""
        response = self.read_binary(0, min(length, 256))
        if response.sw != SW_END_OF_FILE:
            check_sw(response.sw, action)
        return response.data

    def read_object(self, action: str, limit: int = MAX_OFFSET + 1) -> bytes:
        """Read the BER/DER object the current EF holds, in chunks, until its length is complete.

        Returns exactly the object's bytes (any padding after it in the EF is not returned).
        Raises ReadError when the EF ends early, the header is malformed, or it exceeds ``limit``.
        """
        if self.extended_reads:
            response = self.read_binary(0, 65536, extended=True)
            if response.sw in (SW_OK, SW_END_OF_FILE):
                return self._complete(bytearray(response.data), action, limit)
            if response.sw in (SW_WRONG_LENGTH, 0x6D00, 0x6E00, 0x6A86):
                log.debug("%s: extended READ BINARY refused (%04X); reading in short chunks", action,
                          response.sw)
                self.extended_reads = False
            else:
                check_sw(response.sw, action)
        return self._complete(bytearray(), action, limit)

    def read_range(self, offset: int, length: int, action: str) -> bytearray:
        """Exactly ``length`` bytes of the current EF from ``offset`` (one extended read, or short chunks).

        Returns a bytearray so the caller can zero it. Raises ReadError when the EF ends first.
        """
        if length < 0 or offset + length > MAX_OFFSET + 1:
            raise ReadError(f"{action}: bytes {offset}..{offset + length} are outside the 15-bit offset range")
        data = bytearray()
        if self.extended_reads and length > self.chunk_bytes:
            response = self.read_binary(offset, length, extended=True)
            if response.sw in (SW_OK, SW_END_OF_FILE):
                data += response.data
            elif response.sw in (SW_WRONG_LENGTH, 0x6D00, 0x6E00, 0x6A86):
                log.debug("%s: extended READ BINARY refused (%04X); reading in short chunks", action, response.sw)
                self.extended_reads = False
            else:
                check_sw(response.sw, action)
        while len(data) < length:
            at = offset + len(data)
            response = self.read_binary(at, min(self.chunk_bytes, length - len(data)))
            if response.sw == 0x6B00 or (response.sw in (SW_OK, SW_END_OF_FILE) and not response.data):
                data[:] = bytes(len(data))
                raise ReadError(f"{action}: EF ends at {at} bytes, before {offset + length}", sw=response.sw)
            if response.sw != SW_END_OF_FILE:
                check_sw(response.sw, action)
            data += response.data
        if len(data) > length:  # a card that answered more: zero the surplus before letting it go
            data[length:] = bytes(len(data) - length)
            del data[length:]
        return data

    def _complete(self, data: bytearray, action: str, limit: int) -> bytes:
        """Go on reading short chunks after ``data`` until the object's length is covered."""
        total: int | None = None
        while True:
            if total is None:
                try:
                    total = tlv.total_length(bytes(data))
                except tlv.TlvIncomplete:
                    total = None
                if total is not None and total > limit:
                    raise ReadError(f"{action}: object of {total} bytes exceeds the {limit}-byte limit")
            if total is not None and len(data) >= total:
                result = bytes(data[:total])
                data[:] = bytes(len(data))  # card data may be a face photo: leave no stray copy
                return result
            offset = len(data)
            if offset > MAX_OFFSET:
                raise ReadError(f"{action}: object runs past the 15-bit READ BINARY offset range")
            want = self.chunk_bytes if total is None else min(self.chunk_bytes, total - offset)
            response = self.read_binary(offset, want)
            if response.sw == 0x6B00 or (response.sw in (SW_OK, SW_END_OF_FILE) and not response.data):
                raise ReadError(f"{action}: EF ends at {offset} bytes, before its object "
                                f"({total if total is not None else 'unknown'} bytes) is complete",
                                sw=response.sw)
            if response.sw != SW_END_OF_FILE:
                check_sw(response.sw, action)
            data += response.data


__all__ = ["ApduFormatError", "CardChannel", "CardError", "CommandApdu", "FileNotFound", "ResponseApdu",
           "check_sw", "describe_sw"]
