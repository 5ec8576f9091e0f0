"""Card reader backend on nfcpy: a PN532 (UART or USB) or another nfcpy reader, reading Type B cards.

Selection string ``nfcpy:<path>``; the path is nfcpy's own (``tty:S0:pn532``, ``tty:USB0:pn532``,
``usb:054c:06c1``, ``usb``), or ``tty:/dev/…:pn532`` with an absolute device path, which nfcpy's
search does not accept (it only looks for names in ``/dev``): we then open the driver directly, which
is how a PN532 emulator on ``/dev/pts/N`` is reached without a symlink.

The My Number card is ISO/IEC 14443 Type B at 106 kbit/s: we sense ``106B``, let nfcpy activate the
``Type4BTag`` (its own ATTRIB with 256-byte frames), and move APDUs with ``tag.transceive``; nfcpy does
ISO-DEP (I-blocks, chaining, R(ACK)/R(NAK)) over the PN532's InCommunicateThru.

======================  =======  ===========================================================
reader (nfcpy driver)   support  remarks
======================  =======  ===========================================================
PN532 UART (pn532)      yes      ``tty:S0:pn532`` (Pi mini-UART: 115200 only), 921600 elsewhere
one command per block   pn53x    after the first block, blocks go straight to InCommunicateThru
PN532 emulator (pty)    yes      ``tty:/dev/pts/N:pn532`` or a link in /dev (hal.sim.pn532_emulator)
PN533 / RC-S956 (usb)   yes      Type B at 106 kbit/s through nfcpy's pn533/rcs956 drivers
RC-S380 (usb)           yes      nfcpy's rcs380 senses 106B
ACR122U (usb)           no       its firmware hides Type B; use the pcsc backend instead
extended-length APDUs   no       READ BINARY asks ≤ 251 bytes (no ISO-DEP chaining needed)
======================  =======  ===========================================================

Speed: nfcpy's pn53x driver sends four chip commands per ISO-DEP block (ReadRegister, WriteRegister,
RFConfiguration for the timeout, InCommunicateThru). The mode registers and the timeout do not change
between blocks of one activated card, so :class:`DirectThru` sends the first block (and any block
with a different timeout) through nfcpy's full path and the rest as one InCommunicateThru each,
with nfcpy's own error mapping. At 115200 baud that is ~100 fewer UART bytes per block.

Errors: a card that stops answering and is no longer present → :class:`CardRemoved`; one that is
still present but silent → :class:`LinkTimeout`; the reader itself failing → :class:`DeviceNotFound`.
Every public method (``start``, ``close``, ``wait_for_card``, ``is_card_present``, ``transmit``) raises
only :class:`~hal.errors.HalError`: nfcpy and pyserial report a vanished or confused PN532 in many
ways (``termios.error``, ``nfc.clf.pn53x.Chipset.Error``, ``serial.SerialException`` often with
``errno`` None, plain ``OSError``/``IOError``), and :func:`translate` maps each one at this boundary:

- ``termios.error``, pyserial's ``SerialException`` and any other ``OSError`` → :class:`DeviceNotFound`;
  the frontend is dropped, so the next ``start()`` reopens the port once the reader is back;
- ``nfc.clf.pn53x.Chipset.Error`` (one error frame from the chip) → :class:`DeviceError`: a retry may work;
- during ``transmit``, nfcpy's ``CommunicationError``/``TagCommandError`` or a chip error frame →
  :class:`CardRemoved` (the card is gone) or :class:`LinkTimeout` (still present), by a presence check;
- anything else from nfcpy or pyserial → :class:`DeviceError` naming the exception type.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import sys
import threading
import time

from hal.contracts import CardLink, CardReader
from hal.errors import (
    BackendUnavailable,
    BadBackend,
    CardRemoved,
    DeviceError,
    DeviceNotFound,
    HalError,
    LinkTimeout,
)

try:
    from termios import error as TermiosError  # noqa: N812 - the stdlib's lower-case class name
except ImportError:  # no termios (Windows): nothing can raise it there
    class TermiosError(Exception):  # noqa: N818
        """Stands in for ``termios.error`` where the module does not exist."""

log = logging.getLogger(__name__)

#: READ BINARY size that fits one ISO-DEP I-block with nfcpy's 256-byte frames: 256 − PCB − CRC(2)
#: = 253 bytes of INF, minus the status word.
PN532_MAX_RESPONSE_BYTES = 251
SENSE_INTERVAL_S = 0.05  # tap → reading is part of every check-in; a PN532 sense is one short UART exchange
FIX_HINT = (
    "check the reader is connected and its UART/USB device exists and is readable "
    "(group dialout/plugdev), that no other program holds it, and that the path names the driver, "
    "e.g. nfcpy:tty:S0:pn532 or nfcpy:usb"
)


def _nfc():
    try:
        import nfc
        import nfc.clf
        import nfc.tag
        import nfc.tag.tt4
    except ImportError as exc:
        raise BackendUnavailable(
            f"the nfcpy card reader backend needs the Python package 'nfcpy' ({exc})"
        ) from exc
    return nfc


def _chipset_error_class():
    """``nfc.clf.pn53x.Chipset.Error`` if nfcpy's pn53x driver is loaded (it is not an OSError)."""
    pn53x = sys.modules.get("nfc.clf.pn53x")
    return getattr(getattr(pn53x, "Chipset", None), "Error", None)


def translate(exc: BaseException, path: str, doing: str) -> HalError:
    """The project error for a vendor exception raised while ``doing`` something with reader ``path``.

    Why one function: nfcpy lets pyserial's and termios' errors through unchanged and raises its
    own chip errors beside them, so the same unplugged PN532 shows up as four different types
    depending on which byte was in flight. Callers ``raise translate(...) from exc``.
    """
    if isinstance(exc, HalError):
        return exc
    chipset_error = _chipset_error_class()
    if chipset_error is not None and isinstance(exc, chipset_error):
        return DeviceError(
            f"the NFC reader {path!r} answered an error frame while {doing} ({exc}); this is retried, "
            "and if it keeps happening check the UART wiring and power of the PN532"
        )
    if isinstance(exc, TermiosError):
        detail = exc.args[1] if len(exc.args) > 1 else exc
        return DeviceNotFound(
            f"the NFC reader {path!r} is no longer a usable serial port while {doing} ({detail}); {FIX_HINT}"
        )
    if isinstance(exc, OSError):  # includes pyserial's SerialException, whose errno is often None
        detail = exc.strerror or str(exc) or type(exc).__name__
        return DeviceNotFound(f"the NFC reader {path!r} stopped answering while {doing} ({detail}); {FIX_HINT}")
    nfc_clf = sys.modules.get("nfc.clf")
    if nfc_clf is not None and isinstance(exc, nfc_clf.Error):
        return DeviceError(f"the NFC reader {path!r} failed while {doing}: {exc or type(exc).__name__}")
    return DeviceError(
        f"the NFC reader {path!r} failed while {doing} with an unexpected {type(exc).__name__} from "
        f"nfcpy: {exc}; if it persists, restart the kiosk and report it"
    )


def _drop_frontend(clf) -> None:
    """Close an nfcpy frontend whose reader may already be gone, and release its serial port.

    nfcpy's own close talks to the chip first (ACK, baud rate back to 115200, PowerDown) and only
    then closes the port, so on a dead PN532 it fails before the port is closed: the descriptor
    would leak and a reopened emulator or re-plugged adapter could not be opened again.
    """
    device = getattr(clf, "device", None)
    try:
        clf.close()
    except Exception as exc:  # closing a vanished reader must not mask the real error
        log.debug("closing nfcpy frontend: %s", exc)
    transport = getattr(getattr(device, "chipset", None), "transport", None)
    port = getattr(transport, "tty", None)
    if port is not None:
        try:
            port.close()
        except Exception as exc:  # the fd may be gone already
            log.debug("closing serial port: %s", exc)
    with contextlib.suppress(Exception):
        clf.device = None


def open_reader(argument: str) -> NfcpyReader:
    """Registry factory: ``argument`` is an nfcpy path (``tty:S0:pn532``, ``usb``, ``tty:/dev/…:pn532``)."""
    return NfcpyReader(argument)


#: Instructions whose data is a secret (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER).
SECRET_INSTRUCTIONS = frozenset({0x20, 0x24, 0x2C})


@contextlib.contextmanager
def _no_debug_logs(apdu: bytes):
    """Silence DEBUG logging process-wide while a secret crosses nfcpy.

    nfcpy logs every frame in hex at DEBUG and below (``tag.transceive``, ``clf.exchange``, the
    chipset and the UART transport), PIN bytes included, and its child loggers may carry their own
    levels, so only ``logging.disable`` is sure to keep a PIN out of a debug log. It lasts one APDU.
    """
    secret = len(apdu) > 5 and apdu[1] in SECRET_INSTRUCTIONS
    previous = logging.root.manager.disable
    if secret:
        logging.disable(max(previous, logging.DEBUG))
    try:
        yield
    finally:
        if secret:
            logging.disable(previous)


def _synthesised_atr(atqb: bytes, attrib_answer: bytes) -> bytes:
    """PC/SC part 3 ATR for a Type B card: 3B 88 80 01 + app data + protocol info + MBLI, TCK."""
    mbli = (attrib_answer[0] & 0xF0) if attrib_answer else 0x00
    historical = atqb[5:9] + atqb[9:12] + bytes([mbli])
    body = bytes([0x88, 0x80, 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


class DirectThru:
    """Takes the place of the ContactlessFrontend inside nfcpy's ``IsoDepInitiator`` (see module doc)."""

    def __init__(self, clf, target) -> None:
        self.clf = clf
        self.target = target
        self._configured_timeout: float | None = None

    def exchange(self, data, timeout):
        nfc = _nfc()
        with self.clf.lock:
            device = self.clf.device
            if device is None:
                raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
            if timeout != self._configured_timeout:
                answer = device.send_cmd_recv_rsp(self.target, data, timeout)
                self._configured_timeout = timeout
                return answer
            chipset = device.chipset
            try:
                return chipset.in_communicate_thru(bytearray(data), timeout + 0.1)
            except chipset.Error as error:  # the same mapping as nfcpy's pn53x send_cmd_recv_rsp
                if error.errno == 1:
                    raise nfc.clf.TimeoutError from error
                raise nfc.clf.TransmissionError(str(error)) from error
            except OSError as error:
                if error.errno != errno.ETIMEDOUT:
                    raise
                raise nfc.clf.TimeoutError("in_communicate_thru") from error


class NfcpyCardLink(CardLink):
    """An activated Type 4B tag. Every vendor error is translated here."""

    def __init__(self, reader: NfcpyReader, tag, atr: bytes) -> None:
        self._reader = reader
        self._tag = tag
        self._atr = atr
        self._dead = False

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def max_response_bytes(self) -> int:
        return PN532_MAX_RESPONSE_BYTES

    @property
    def alive(self) -> bool:
        return not self._dead

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self._dead:
            raise CardRemoved("the card left the reader (link closed)")
        nfc = _nfc()
        chip_error = _chipset_error_class() or nfc.clf.CommunicationError
        with self._reader.lock:
            try:
                with _no_debug_logs(apdu):
                    answer = self._tag.transceive(bytearray(apdu))
            except (nfc.tag.TagCommandError, nfc.clf.CommunicationError, chip_error) as exc:
                # A chip error frame mid-exchange leaves the ISO-DEP block state unknown: like a lost
                # block, the card is either gone or needs the caller to retry the APDU.
                self._after_failure(exc)
            except Exception as exc:
                self._dead = True
                error = translate(exc, self._reader.path, "exchanging an APDU with the card")
                if isinstance(error, DeviceNotFound):
                    self._reader._lost()
                raise error from exc
        if answer is None or len(answer) < 2:
            raise LinkTimeout(f"the card sent a {0 if answer is None else len(answer)}-byte answer, no status word")
        return bytes(answer[:-2]), answer[-2] << 8 | answer[-1]

    def _after_failure(self, exc: Exception):
        present = False
        try:
            present = bool(self._tag.is_present)
        except Exception as probe_exc:  # a dying reader: the card is as good as gone
            log.debug("presence check failed: %s", probe_exc)
        if not present:
            self._dead = True
            raise CardRemoved(f"the card left the reader during an exchange ({exc})") from exc
        raise LinkTimeout(f"the card is present but did not answer in time ({exc})") from exc

    def is_present(self) -> bool:
        if self._dead:
            return False
        with self._reader.lock:
            try:
                present = bool(self._tag.is_present)
            except Exception as exc:
                log.debug("presence check failed: %s", exc)
                present = False
        if not present:
            self._dead = True
        return present

    def close(self) -> None:
        self._dead = True
        self._reader._forget(self)


class NfcpyReader(CardReader):
    """A contactless frontend opened through nfcpy, sensing Type B cards only."""

    def __init__(self, path: str) -> None:
        super().__init__()
        if not path:
            raise BadBackend(
                "the nfcpy backend needs a device path, e.g. nfcpy:tty:S0:pn532, nfcpy:tty:USB0:pn532, "
                "nfcpy:usb or nfcpy:tty:/dev/pts/5:pn532"
            )
        if not path.startswith(("tty:", "usb", "com:", "udp")):
            raise BadBackend(f"nfcpy path must start with 'tty:', 'usb', 'com:' or 'udp', not {path!r}")
        self.path = path
        #: False keeps nfcpy's stock four-commands-per-block path (the benchmark compares both).
        self.direct_thru = True
        self.lock = threading.RLock()
        self._clf = None
        self._link: NfcpyCardLink | None = None

    def describe(self) -> str:
        chip = str(self._clf.device) if self._clf is not None and self._clf.device is not None else "closed"
        return f"nfcpy reader {self.path} ({chip})"

    def start(self) -> None:
        if self._clf is not None:
            return
        nfc = _nfc()
        clf = nfc.ContactlessFrontend()
        try:
            if self.path.startswith("tty:/"):
                clf.device = self._open_tty_directly(self.path)
            elif not clf.open(self.path):
                raise DeviceNotFound(f"no NFC reader found at nfcpy path {self.path!r}: {FIX_HINT}")
        except HalError:
            _drop_frontend(clf)
            raise
        except OSError as exc:
            _drop_frontend(clf)
            detail = exc.strerror or str(exc) or type(exc).__name__
            raise DeviceNotFound(f"cannot open NFC reader {self.path!r}: {detail}; {FIX_HINT}") from exc
        except Exception as exc:  # termios.error, a chip error frame at start-up, …
            _drop_frontend(clf)
            error = translate(exc, self.path, "opening it")
            if isinstance(error, DeviceError):  # a reader that cannot start is not usable
                error = DeviceNotFound(f"cannot open NFC reader {self.path!r}: {error}")
            raise error from exc
        self._clf = clf
        log.info("opened %s", self.describe())

    @staticmethod
    def _open_tty_directly(path: str):
        _, _, rest = path.partition(":")
        device_path, _, driver_name = rest.rpartition(":")
        if not device_path or not driver_name:
            raise BadBackend(f"expected tty:/dev/<device>:<driver>, e.g. tty:/dev/pts/5:pn532, not {path!r}")
        try:
            driver = importlib.import_module(f"nfc.clf.{driver_name}")
        except ImportError as exc:
            raise BadBackend(f"nfcpy has no driver named {driver_name!r} (try pn532)") from exc
        import nfc.clf.transport

        transport = nfc.clf.transport.TTY(device_path)
        try:
            device = driver.init(transport)
        except BaseException:
            # nfcpy leaves the port open when the chip does not answer: close it, or the next
            # start() (reader back) finds the old descriptor still holding the line.
            with contextlib.suppress(Exception):
                transport.close()
            if transport.tty is not None:
                with contextlib.suppress(Exception):
                    transport.tty.close()
            raise
        device._path = device_path
        return device

    def close(self) -> None:
        super().close()
        self._lost()

    def _lost(self) -> None:
        """Drop the link and the frontend (not the watcher): on a lost reader, so ``start()`` reopens it;
        on ``close()``, after the watcher has stopped."""
        with self.lock:
            if self._link is not None:
                self._link._dead = True
                self._link = None
            if self._clf is not None:
                _drop_frontend(self._clf)
                self._clf = None

    def _forget(self, link: NfcpyCardLink) -> None:
        with self.lock:
            if self._link is link:
                self._link = None

    def wait_for_card(self, timeout_s: float) -> NfcpyCardLink | None:
        self.start()
        nfc = _nfc()
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            with self.lock:
                if self._clf is None:  # closed or lost by another thread meanwhile
                    raise DeviceNotFound(f"the NFC reader {self.path!r} is closed; start() it again")
                try:
                    link = self._sense_once(nfc)
                except Exception as exc:
                    error = translate(exc, self.path, "waiting for a card")
                    if isinstance(error, DeviceNotFound):
                        self._lost()
                    raise error from exc
            if link is not None or time.monotonic() >= deadline:
                return link
            time.sleep(min(SENSE_INTERVAL_S, max(0.0, deadline - time.monotonic())))

    def _sense_once(self, nfc) -> NfcpyCardLink | None:
        if self._link is not None and self._link.alive:
            return self._link
        try:
            target = self._clf.sense(nfc.clf.RemoteTarget("106B"))
            if target is None:
                return None
            tag = nfc.tag.activate(self._clf, target)
        except nfc.clf.CommunicationError as exc:  # a card that left during activation: no card
            log.debug("activation failed: %s", exc)
            return None
        if tag is None or not isinstance(tag, nfc.tag.tt4.Type4Tag):
            log.debug("ignoring a tag that is not ISO-DEP: %s", tag)
            return None
        pn53x = importlib.import_module("nfc.clf.pn53x")
        if self.direct_thru and isinstance(self._clf.device, pn53x.Device) and getattr(tag, "_dep", None):
            tag._dep.clf = DirectThru(self._clf, self._clf.target)
        sensb_res = bytes(target.sensb_res)
        self._link = NfcpyCardLink(self, tag, _synthesised_atr(sensb_res, b"\x00"))
        log.debug("card activated: %s", tag)
        return self._link

    def is_card_present(self) -> bool:
        link = self._link
        return link is not None and link.is_present()
