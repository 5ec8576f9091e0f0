"""A virtual card's radio side: ISO/IEC 14443-3 Type B activation and 14443-4 ISO-DEP blocks.

The PN532 emulator hands every frame the reader would put on the field to :meth:`TypeBCard.receive`
and gets back the card's answer (``None`` = silence, which the PN532 reports as a timeout). Above
ISO-DEP the card is any object with ``.atr``, ``.power_on()`` and ``.process(apdu) -> data + SW``
(``hal.sim.card.VirtualCard``).

What is modelled, because nfcpy's real PN532 driver exercises it:

- REQB/WUPB → ATQB announcing ISO-DEP, CID support, FSCI and FWI; HLTB; ATTRIB with CID and FSDI.
- S(DESELECT) with or without CID → HALT (only WUPB wakes the card, then a second ATTRIB).
- I-blocks with CID, chaining in both directions, R(ACK)/R(NAK) with ISO 14443-4 block-number rules
  (retransmit on NAK of the last block, ACK when the reader asks about a block we never sent).
- Leaving the field (:meth:`remove`, or :meth:`pull_after_commands` to leave in the middle of a read)
  and field-off power loss: the card forgets its session and answers nothing until it is back.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger(__name__)

FSD_BY_CODE = (16, 24, 32, 40, 48, 64, 96, 128, 256)

PCB_I_BLOCK_MASK, PCB_I_BLOCK = 0xE2, 0x02
PCB_R_BLOCK_MASK, PCB_R_BLOCK = 0xE6, 0xA2
PCB_S_BLOCK_MASK, PCB_S_BLOCK = 0xC7, 0xC2
PCB_CHAINING = 0x10
PCB_CID_FOLLOWS = 0x08
PCB_NAD_FOLLOWS = 0x04
PCB_BLOCK_NUMBER = 0x01
PCB_R_NAK = 0x10
S_DESELECT = 0xC2
S_WTX = 0xF2


class ApduCard(Protocol):
    """What the radio layer needs from the card behind it."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def process(self, apdu: bytes) -> bytes: ...


class TypeBCard:
    """A Type B card in (or out of) a reader's field, speaking ISO-DEP to whatever sends it frames."""

    def __init__(
        self,
        card: ApduCard,
        pupi: bytes = bytes.fromhex("4A504B49"),
        application_data: bytes = bytes.fromhex("00000000"),
        fsci: int = 8,
        fwi: int = 8,
    ) -> None:
        if len(pupi) != 4 or len(application_data) != 4:
            raise ValueError("PUPI and application data must be 4 bytes each")
        self.card = card
        self.pupi = bytes(pupi)
        self.application_data = bytes(application_data)
        self.fsci = fsci
        self.fwi = fwi
        self._lock = threading.Lock()
        self._in_field = True
        self._powered = False
        self._pull_after: int | None = None
        self.commands_processed = 0
        self._reset_session()

    # ------------------------------------------------------------------ field and power

    @property
    def in_field(self) -> bool:
        return self._in_field

    def insert(self) -> None:
        """Put the card (back) on the reader: it powers up at the next REQB/WUPB."""
        with self._lock:
            self._in_field = True
            self._pull_after = None

    def remove(self) -> None:
        """Take the card off the reader: it loses power and answers nothing."""
        with self._lock:
            self._leave_field()

    def pull_after_commands(self, count: int) -> None:
        """Leave the field when the next ``count`` APDUs have been answered (mid-read removal)."""
        with self._lock:
            self._pull_after = count

    def field_off(self) -> None:
        """The reader switched its RF field off: the card loses power and its session."""
        with self._lock:
            self._powered = False
            self._reset_session()

    def _leave_field(self) -> None:
        self._in_field = False
        self._powered = False
        self._pull_after = None
        self._reset_session()

    def _reset_session(self) -> None:
        self.state = "idle"  # idle → ready (ATQB sent) → active (ATTRIB) → halt (DESELECT/HLTB)
        self.cid = 0
        self.fsd = 256
        self._rx_chain = bytearray()
        self._tx_pending = b""
        self._last_block = b""
        self._block_number = 1  # ISO 14443-4: the PICC's block number starts at 1

    # ------------------------------------------------------------------ answers

    @property
    def atqb(self) -> bytes:
        """ATQB: 50 + PUPI + application data + protocol info (106 kbit/s only, ISO-DEP, CID)."""
        bit_rates = 0x00
        fsci_protocol = (self.fsci << 4) | 0x01  # protocol type 1: ISO 14443-4 compliant
        fwi_adc_fo = (self.fwi << 4) | 0x01  # FO bit 0: CID supported; no NAD
        return b"\x50" + self.pupi + self.application_data + bytes([bit_rates, fsci_protocol, fwi_adc_fo])

    def receive(self, frame: bytes) -> bytes | None:
        """Handle one frame from the reader; return the card's answer or None for silence."""
        with self._lock:
            if not self._in_field or not frame:
                return None
            if not self._powered:
                self._powered = True
                self._reset_session()
                self.card.power_on()
            return self._dispatch(bytes(frame))

    def _dispatch(self, frame: bytes) -> bytes | None:
        if frame[0] == 0x05 and len(frame) >= 3:
            return self._on_reqb(frame)
        if frame[0] == 0x1D and len(frame) >= 9:
            return self._on_attrib(frame)
        if frame[0] == 0x50 and len(frame) == 5:
            if frame[1:5] == self.pupi and self.state in ("ready", "active"):
                self.state = "halt"
                return b"\x00"
            return None
        if self.state != "active":
            return None
        return self._on_block(frame)

    def _on_reqb(self, frame: bytes) -> bytes | None:
        afi, param = frame[1], frame[2]
        wake_up = bool(param & 0x08)
        if afi not in (0x00, self.application_data[0]):
            return None
        if self.state == "halt" and not wake_up:
            return None
        if self.state == "active":
            return None
        self.state = "ready"
        return self.atqb

    def _on_attrib(self, frame: bytes) -> bytes | None:
        if frame[1:5] != self.pupi or self.state not in ("ready", "active"):
            return None
        param2, param4 = frame[6], frame[8]
        self.fsd = FSD_BY_CODE[min(param2 & 0x0F, 8)]
        self.cid = param4 & 0x0F
        self.state = "active"
        self._rx_chain.clear()
        self._tx_pending = b""
        self._last_block = b""
        self._block_number = 1
        log.debug("ATTRIB: CID %d, FSD %d", self.cid, self.fsd)
        return bytes([self.cid])  # MBLI 0 (no limit announced), CID echoed

    def _on_block(self, frame: bytes) -> bytes | None:
        pcb = frame[0]
        body = frame[1:]
        has_cid = bool(pcb & PCB_CID_FOLLOWS)
        if has_cid:
            if not body or (body[0] & 0x0F) != self.cid:
                return None  # addressed to another card
            body = body[1:]
        elif self.cid != 0:
            return None  # a card with CID ≠ 0 ignores blocks without CID
        if pcb & PCB_NAD_FOLLOWS and (pcb & PCB_I_BLOCK_MASK) == PCB_I_BLOCK:
            body = body[1:]
        prefix = bytes([self.cid]) if has_cid else b""

        if (pcb & PCB_S_BLOCK_MASK) == PCB_S_BLOCK:
            if pcb & 0x30 == 0x00:  # DESELECT
                self.state = "halt"
                return bytes([S_DESELECT | (pcb & PCB_CID_FOLLOWS)]) + prefix
            return None  # WTX answers from the reader: we never ask for more time
        if (pcb & PCB_R_BLOCK_MASK) == PCB_R_BLOCK:
            return self._on_r_block(pcb, prefix)
        if (pcb & PCB_I_BLOCK_MASK) == PCB_I_BLOCK:
            return self._on_i_block(pcb, body, prefix)
        return None

    def _on_r_block(self, pcb: int, prefix: bytes) -> bytes:
        number = pcb & PCB_BLOCK_NUMBER
        if pcb & PCB_R_NAK:
            if number == self._block_number and self._last_block:
                return self._last_block  # our last block got lost: send it again
            return self._r_ack(prefix, self._block_number)
        if number == self._block_number and self._last_block:
            return self._last_block  # the reader did not get our last block
        if self._tx_pending:
            return self._send_chunk(number, prefix)
        return self._r_ack(prefix, self._block_number)

    def _on_i_block(self, pcb: int, body: bytes, prefix: bytes) -> bytes:
        number = pcb & PCB_BLOCK_NUMBER
        self._rx_chain += body
        if pcb & PCB_CHAINING:
            self._block_number = number
            self._last_block = self._r_ack(prefix, number)
            return self._last_block
        apdu = bytes(self._rx_chain)
        self._rx_chain.clear()
        if self._pull_after is not None:
            if self._pull_after <= 0:
                log.debug("card leaves the field before answering %d-byte APDU", len(apdu))
                self._leave_field()
                return None
            self._pull_after -= 1
        self._tx_pending = bytes(self.card.process(apdu))
        self.commands_processed += 1
        return self._send_chunk(number, prefix)

    def _send_chunk(self, number: int, prefix: bytes) -> bytes:
        room = self.fsd - 3 - len(prefix)  # PCB + CRC, and the CID byte if used
        chunk, self._tx_pending = self._tx_pending[:room], self._tx_pending[room:]
        pcb = PCB_I_BLOCK | number | (PCB_CHAINING if self._tx_pending else 0)
        pcb |= PCB_CID_FOLLOWS if prefix else 0
        self._block_number = number
        self._last_block = bytes([pcb]) + prefix + chunk
        return self._last_block

    def _r_ack(self, prefix: bytes, number: int) -> bytes:
        pcb = PCB_R_BLOCK | number | (PCB_CID_FOLLOWS if prefix else 0)
        return bytes([pcb]) + prefix
