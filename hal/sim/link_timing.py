"""Time on the wire between a host, a PN532 and a Type B card: one model for the emulator and the bench.

The PN532 emulator sleeps for exactly these durations so that a benchmark through it pays what a
real UART and a real 106 kbit/s field would cost; the card benchmark computes its *floor* from the
same functions, so "ratio to floor" measures only what our software (nfcpy, the firmware's card layer,
the emulator's scheduling) adds on top of physics.

Model (from the project's HIL reference):

- UART: 10 bits per byte (start + 8 data + stop) at the configured baud rate, both directions.
- RF at 106 kbit/s: 1 etu = 128 / 13.56 MHz ≈ 9.44 µs; 10 etu per byte, 2 CRC bytes per frame,
  ~22 etu for SOF/EOF, and ~170 µs of card turnaround before each answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ETU_S = 128 / 13.56e6
UART_BITS_PER_BYTE = 10
RF_ETU_PER_BYTE = 10
RF_CRC_BYTES = 2
RF_FRAME_OVERHEAD_ETU = 22
CARD_TURNAROUND_S = 170e-6

#: PN532 host frame overheads, in bytes (see :mod:`hal.sim.pn532_frames`).
ACK_FRAME_BYTES = 6


def uart_seconds(n_bytes: int, baud: int) -> float:
    """Seconds ``n_bytes`` take on a UART at ``baud`` (10 bits per byte)."""
    return n_bytes * UART_BITS_PER_BYTE / baud


def rf_frame_seconds(n_bytes: int) -> float:
    """Seconds one Type B frame carrying ``n_bytes`` (without CRC) takes at 106 kbit/s."""
    return ((n_bytes + RF_CRC_BYTES) * RF_ETU_PER_BYTE + RF_FRAME_OVERHEAD_ETU) * ETU_S


def rf_exchange_seconds(command_bytes: int, response_bytes: int | None) -> float:
    """Seconds for one command frame and, if the card answers, its turnaround and answer frame."""
    seconds = rf_frame_seconds(command_bytes)
    if response_bytes is not None:
        seconds += CARD_TURNAROUND_S + rf_frame_seconds(response_bytes)
    return seconds


def pn532_frame_bytes(n_data: int) -> int:
    """Bytes of a PN532 information frame whose TFI + PD part is ``n_data`` bytes long.

    Normal frame: ``00 00 FF LEN LCS`` + data + ``DCS 00``; extended frames (data ≥ 255 bytes) add
    ``FF FF LENm LENl LCS`` in place of ``LEN LCS``.
    """
    return n_data + (7 if n_data <= 254 else 10)


def minimal_thru_uart_bytes(block_bytes: int, answer_bytes: int | None) -> int:
    """UART bytes the leanest possible PN532 host driver needs to move one ISO-DEP block.

    One InCommunicateThru command (``D4 42`` + block), the PN532's ACK, and its answer (``D5 43 00``
    + answer, or ``D5 43 01`` when the card stayed silent). Register set-up that a particular driver
    adds per block (nfcpy sends three more commands) is *not* part of the floor.
    """
    command = pn532_frame_bytes(2 + block_bytes)
    answer = pn532_frame_bytes(3 + (answer_bytes or 0))
    return command + ACK_FRAME_BYTES + answer


@dataclass
class WireLog:
    """What crossed the UART and the field since the last :meth:`reset` (filled by the emulator)."""

    uart_seconds: float = 0.0
    uart_bytes_to_pn532: int = 0
    uart_bytes_to_host: int = 0
    rf_seconds: float = 0.0
    #: (command block length, answer length or None) for every InCommunicateThru.
    rf_exchanges: list[tuple[int, int | None]] = field(default_factory=list)
    host_commands: int = 0

    def reset(self) -> None:
        self.uart_seconds = 0.0
        self.uart_bytes_to_pn532 = 0
        self.uart_bytes_to_host = 0
        self.rf_seconds = 0.0
        self.rf_exchanges.clear()
        self.host_commands = 0

    def floor_seconds(self, baud: int) -> dict[str, float]:
        """The link floor for the RF exchanges logged: minimal PN532 framing at ``baud`` plus RF time.

        Returns a dict with ``uart_s``, ``rf_s`` and ``total_s``.
        """
        uart_bytes = sum(minimal_thru_uart_bytes(cmd, rsp) for cmd, rsp in self.rf_exchanges)
        rf = sum(rf_exchange_seconds(cmd, rsp) for cmd, rsp in self.rf_exchanges)
        uart = uart_seconds(uart_bytes, baud)
        return {"uart_s": uart, "rf_s": rf, "total_s": uart + rf, "uart_bytes": uart_bytes}
