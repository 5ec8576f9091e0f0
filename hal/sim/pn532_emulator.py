"""A PN532 on a pseudo-terminal, with a virtual Type B card in its field, for nfcpy's *real* driver.

nfcpy's ``pn532`` driver opens the pty's slave side like a UART (``tty:NAME:pn532`` through a symlink
in ``/dev``, or ``nfc.clf.pn532.init(nfc.clf.transport.TTY(path))``) and runs its whole start-up and
ISO 14443-B sequence against this emulator. Time on the wire is emulated honestly: every byte in
either direction costs 10 bits at the *emulated* baud rate and every field exchange costs the RF time
of :mod:`hal.sim.link_timing`, so a benchmark through the emulator pays what real hardware would.

==========================  =======  ==================================================================
PN532 command               support  remarks
==========================  =======  ==================================================================
Diagnose 00                 yes      line test echoed (extended frames), ROM/RAM tests report OK
GetFirmwareVersion 02       yes      PN532 v1.6
GetGeneralStatus 04         yes      no error, field state, no target
Read/WriteRegister 06/08    yes      a register file; unknown registers read 00
SetSerialBaudrate 10        yes      emulated rate = min(requested, ``max_baud``)
SetParameters 12            yes
SAMConfiguration 14         yes
PowerDown 16                yes      the field goes off
RFConfiguration 32          yes      field on/off (card loses power), timeouts (used on silence)
InListPassiveTarget 4A      106B     REQB + the PN532's own ATTRIB (CID 1, 64-byte frames)
InCommunicateThru 42        yes      frame to the card; status 01 after the RF timeout on silence
InRelease/InDeselect 52/44  yes      answered OK
anything else               no       syntax-error frame, as a real PN532 does
==========================  =======  ==================================================================
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pty
import select
import threading
import time
import tty
from pathlib import Path

from hal.errors import DeviceError
from hal.sim.iso14443b import TypeBCard
from hal.sim.link_timing import WireLog, rf_exchange_seconds, uart_seconds
from hal.sim.pn532_frames import ACK, ERROR_FRAME, TFI_HOST, build_frame, split_frame

log = logging.getLogger(__name__)

SERIAL_BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)
FIRMWARE_VERSION = bytes([0x32, 0x01, 0x06, 0x07])  # IC PN532, version 1.6, supports A, B, ISO 18092
#: The PN532's own ATTRIB for a Type B target: FSDI 5 (64 bytes), 106 kbit/s, ISO-DEP, CID = Tg = 1.
PN532_ATTRIB_PARAMS = bytes([0x00, 0x05, 0x01, 0x01])
REQB_SILENCE_S = 0.0025  # time the PN532 listens for an ATQB before giving up (no card)


def stale_pty_link(path: Path) -> bool:
    """True if ``path`` is a symlink to a ``/dev/pts/N`` that no longer exists.

    That is what an emulator killed before its :meth:`Pn532Emulator.close` leaves behind, and the
    only existing path we replace: a link to a live pty may be another emulator's (or a pty reused
    by a terminal), and a file, device node or other link is somebody else's. We cannot prove we
    made a dangling pts link, but replacing one can break nothing: it leads nowhere.
    """
    if not path.is_symlink():
        return False
    target = os.readlink(path)
    return target.startswith("/dev/pts/") and target[len("/dev/pts/"):].isdigit() and not os.path.lexists(target)


def _stale_for(link: Path, own_pty: str) -> bool:
    """Stale, or pointing at the pty we have just opened.

    The kernel hands out the lowest free pts number, so a ``card serve`` restarted after a kill
    usually gets the very number its predecessor's dangling link names: that link is stale too (the
    pty it names is ours now, so nobody else can be using it).
    """
    return stale_pty_link(link) or (link.is_symlink() and os.readlink(link) == own_pty)


def _describe_existing(path: Path) -> str:
    if path.is_symlink():
        target = os.readlink(path)
        if os.path.lexists(target):
            return f"a link to {target}, which exists"
        return f"a dangling link to {target}, outside /dev/pts"
    if path.is_dir():
        return "a directory"
    if path.is_char_device():
        return "a character device"
    return "a file"


def _make_link(link: Path, target: str) -> None:
    """Create ``link`` → ``target``; replace only a stale pty link, refuse anything else existing."""
    try:
        link.symlink_to(target)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise DeviceError(f"cannot create link {link} to the PN532 emulator's pty {target}: {exc.strerror or exc}; "
                          "choose a link in a folder you may write to (a bare name needs write access to /dev)") from exc
    if not _stale_for(link, target):
        raise DeviceError(
            f"{link} already exists ({_describe_existing(link)}) and is not a stale PN532 emulator link; "
            "choose another link name, or remove it yourself if you know nothing uses it"
        )
    # Replace the stale link atomically, so that nobody sees the name missing or half-made.
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(target)
        if not _stale_for(link, target):  # somebody put something there meanwhile: leave it alone
            temporary.unlink()
            raise DeviceError(f"{link} changed while the stale link was being replaced; not touching it")
        os.replace(temporary, link)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise DeviceError(f"cannot replace the stale link {link}: {exc.strerror or exc}") from exc
    log.info("replaced stale link %s (its pty was gone)", link)


def _remove_own_link(link: Path, target: str) -> None:
    """Delete ``link`` only if it still points at ``target`` (somebody may have replaced it)."""
    try:
        if os.readlink(link) != target:
            log.warning("not removing %s: it no longer points at %s", link, target)
            return
        link.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # not a link any more (EINVAL) or no permission: leave it
        log.warning("not removing %s: %s", link, exc.strerror or exc)


class Pn532Emulator:
    """A PN532 behind a pty. ``path`` is the slave device that nfcpy opens.

    Args:
        card: the card in the field (or None for an empty reader).
        max_baud: the fastest rate the emulated UART accepts; the line starts at 115200 like a real
            PN532 and follows SetSerialBaudrate up to this rate.
        link: optional symlink to create to the pty (a bare name goes under ``/dev`` so that
            ``tty:NAME:pn532`` finds it). An existing path is refused unless it is a stale link
            (see :func:`stale_pty_link`); :meth:`close` removes the link only while it still points
            at this emulator's pty.
        emulate_time: False turns off all sleeping (functional tests that do not measure time).
    """

    def __init__(
        self,
        card: TypeBCard | None = None,
        max_baud: int = 921600,
        link: str | os.PathLike | None = None,
        emulate_time: bool = True,
    ) -> None:
        if max_baud not in SERIAL_BAUDRATES:
            raise ValueError(f"baud rate must be one of {', '.join(map(str, SERIAL_BAUDRATES))}, not {max_baud}")
        self.card = card
        self.max_baud = max_baud
        self.baud = 115200
        self.emulate_time = emulate_time
        self.wire = WireLog()
        self.registers: dict[int, int] = {0x6302: 0x80, 0x6303: 0x80, 0x6305: 0x00, 0x6339: 0x26}
        self.field_on = False
        self.rf_timeout_s = 0.0512
        self._link = Path(link if "/" in str(link) else f"/dev/{link}") if link else None
        self._link_made = False  # True while a link we created exists (close removes only that)
        self._master = self._slave = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_answer = b""
        self._line_free_at = 0.0  # when the chip→host line finishes sending what is queued
        self.path = ""

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Pn532Emulator:
        """Open the pty, make the optional link, and start answering on a daemon thread."""
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.path = os.ttyname(self._slave)
        # We keep our own slave descriptor open so that the host closing and reopening the port (nfcpy
        # does when it changes baud rate) does not hang up the master side.
        if self._link is not None:
            try:
                _make_link(self._link, self.path)
            except DeviceError:
                self.close()
                raise
            self._link_made = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"pn532-emulator:{self.path}", daemon=True)
        self._thread.start()
        log.info("PN532 emulator on %s%s", self.path, f" (link {self._link})" if self._link else "")
        return self

    @property
    def link(self) -> Path | None:
        return self._link

    @property
    def nfcpy_path(self) -> str:
        """The nfcpy search path for this emulator (needs a link under /dev, else use :attr:`path`)."""
        if self._link is not None and self._link.parent == Path("/dev"):
            return f"tty:{self._link.name}:pn532"
        return f"tty:{self.path}:pn532"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self._link_made:
            self._link_made = False
            _remove_own_link(self._link, self.path)

    def __enter__(self) -> Pn532Emulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ serving loop

    def _serve(self) -> None:
        buffer = bytearray()
        first_byte_at = 0.0
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
            except (OSError, ValueError):  # the descriptor was closed under us: we are stopping
                return
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError as exc:
                if exc.errno == errno.EIO and not self._stop.is_set():  # no slave open right now
                    time.sleep(0.005)
                    continue
                if self._stop.is_set():
                    return
                raise
            if not buffer:
                first_byte_at = time.perf_counter()
            buffer += chunk
            while buffer:
                frame = split_frame(buffer)
                if frame is None:
                    break
                del buffer[: frame.wire_bytes]
                received_at = first_byte_at + uart_seconds(frame.wire_bytes, self.baud)
                self.wire.uart_bytes_to_pn532 += frame.wire_bytes
                self.wire.uart_seconds += uart_seconds(frame.wire_bytes, self.baud)
                first_byte_at = received_at
                try:
                    self._on_frame(frame.kind, frame.data, received_at)
                except Exception:  # never let a host's odd frame kill the chip
                    log.exception("PN532 emulator failed on frame %s", frame.data.hex())
                    self._send(ERROR_FRAME, time.perf_counter())

    def _on_frame(self, kind: str, data: bytes, received_at: float) -> None:
        if kind == "ack":
            return  # the host cancels a command; ours are answered already
        if kind == "nack":
            if self._last_answer:
                self._send(self._last_answer, received_at)
            return
        if kind == "bad" or data[0] != TFI_HOST or len(data) < 2:
            self._send(ERROR_FRAME, received_at)
            return
        self.wire.host_commands += 1
        ack_sent_at = self._send(ACK, received_at)
        command, params = data[1], data[2:]
        handler = self._COMMANDS.get(command)
        if handler is None:
            log.debug("unsupported PN532 command %02X", command)
            self._send(ERROR_FRAME, ack_sent_at)
            return
        try:
            payload, busy_s, new_baud = handler(self, params)
        except IndexError:  # parameters too short for the command: a real PN532 answers a syntax error
            self._send(ERROR_FRAME, ack_sent_at)
            return
        answer = build_frame(bytes([command + 1]) + payload)
        self._last_answer = answer
        self._send(answer, ack_sent_at + busy_s)
        if new_baud:
            self.baud = new_baud
            log.debug("UART now at %d baud", new_baud)

    def _send(self, frame: bytes, ready_at: float) -> float:
        """Queue ``frame`` on the chip→host line; it reaches the host when its last byte would."""
        starts = max(ready_at, self._line_free_at)
        arrives = starts + uart_seconds(len(frame), self.baud)
        self._line_free_at = arrives
        self.wire.uart_bytes_to_host += len(frame)
        self.wire.uart_seconds += uart_seconds(len(frame), self.baud)
        if self.emulate_time:
            delay = arrives - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        try:
            os.write(self._master, frame)
        except OSError as exc:
            if not self._stop.is_set():  # closing while a slow answer was pending is not an error
                log.warning("PN532 emulator could not write to the pty: %s", exc)
        return arrives

    # ------------------------------------------------------------------ commands: (payload, busy_s, new_baud)

    def _diagnose(self, params: bytes):
        if params[:1] == b"\x00":
            return params, 0.0, None  # communication line test: echo everything
        return b"\x00", 0.0, None

    def _get_firmware_version(self, params: bytes):
        return FIRMWARE_VERSION, 0.0, None

    def _get_general_status(self, params: bytes):
        return bytes([0x00, int(self.field_on), 0x00, 0x00]), 0.0, None

    def _read_register(self, params: bytes):
        addresses = [params[i] << 8 | params[i + 1] for i in range(0, len(params) - 1, 2)]
        return bytes(self.registers.get(address, 0) for address in addresses), 0.0, None

    def _write_register(self, params: bytes):
        for i in range(0, len(params) - 2, 3):
            self.registers[params[i] << 8 | params[i + 1]] = params[i + 2]
        return b"", 0.0, None

    def _set_serial_baudrate(self, params: bytes):
        requested = SERIAL_BAUDRATES[params[0]] if params and params[0] < len(SERIAL_BAUDRATES) else 115200
        return b"", 0.0, min(requested, self.max_baud)

    def _ok(self, params: bytes):
        return b"", 0.0, None

    def _power_down(self, params: bytes):
        self._set_field(False)
        return b"\x00", 0.0, None

    def _rf_configuration(self, params: bytes):
        item = params[0] if params else None
        if item == 0x01 and len(params) >= 2:
            self._set_field(bool(params[1] & 0x01))
        elif item == 0x02 and len(params) >= 4:
            index = params[3]
            self.rf_timeout_s = 0.0 if index == 0 else 100e-6 * 2 ** (index - 1)
        return b"", 0.0, None

    def _in_list_passive_target(self, params: bytes):
        self._set_field(True)
        max_targets, bit_rate = params[0], params[1]
        afi = params[2] if len(params) > 2 else 0x00
        if max_targets < 1 or bit_rate != 3 or self.card is None:
            return b"\x00", REQB_SILENCE_S, None
        reqb = bytes([0x05, afi, 0x00])
        atqb = self.card.receive(reqb)
        busy = rf_exchange_seconds(len(reqb), len(atqb) if atqb else None)
        if atqb is None:
            return b"\x00", busy + REQB_SILENCE_S, None
        attrib = b"\x1d" + atqb[1:5] + PN532_ATTRIB_PARAMS
        attrib_answer = self.card.receive(attrib)
        busy += rf_exchange_seconds(len(attrib), len(attrib_answer) if attrib_answer else None)
        if attrib_answer is None:
            return b"\x00", busy + REQB_SILENCE_S, None
        return bytes([1, 1]) + atqb + bytes([len(attrib_answer)]) + attrib_answer, busy, None

    def _in_communicate_thru(self, params: bytes):
        answer = self.card.receive(params) if (self.card is not None and self.field_on) else None
        self.wire.rf_exchanges.append((len(params), None if answer is None else len(answer)))
        busy = rf_exchange_seconds(len(params), None if answer is None else len(answer))
        self.wire.rf_seconds += busy
        if answer is None:
            return b"\x01", busy + self.rf_timeout_s, None  # status 01: the target did not answer
        return b"\x00" + answer, busy, None

    def _set_field(self, on: bool) -> None:
        if self.field_on and not on and self.card is not None:
            self.card.field_off()
        self.field_on = on

    _COMMANDS = {
        0x00: _diagnose,
        0x02: _get_firmware_version,
        0x04: _get_general_status,
        0x06: _read_register,
        0x08: _write_register,
        0x10: _set_serial_baudrate,
        0x12: _ok,
        0x14: _ok,
        0x16: _power_down,
        0x32: _rf_configuration,
        0x4A: _in_list_passive_target,
        0x42: _in_communicate_thru,
        0x44: lambda self, params: (b"\x00", 0.0, None),
        0x52: lambda self, params: (b"\x00", 0.0, None),
    }
