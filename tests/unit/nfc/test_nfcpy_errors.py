"""The nfcpy backend lets no vendor exception out: each one nfcpy or pyserial raises becomes a HalError.

One layer down is nfcpy's own API: the frontend (``nfc.ContactlessFrontend``), the driver's
``init``, the serial transport, and the activated tag. Each is replaced by a fake that raises the
exception a dying or confused PN532 produces on real hardware.
"""

from __future__ import annotations

import errno
import termios
import threading

import nfc
import nfc.clf
import nfc.clf.pn53x
import nfc.clf.pn532
import nfc.clf.transport
import nfc.tag
import pytest
import serial

from hal.errors import CardRemoved, DeviceError, DeviceNotFound, HalError, LinkTimeout
from hal.nfc import nfcpy as backend

PATH = "tty:/dev/fake-pn532:pn532"


def chip_error():
    return nfc.clf.pn53x.Chipset.Error(0xFF, "Unknown error code")  # what an error frame gives


#: (vendor exception, what a reader call must raise instead)
READER_FAILURES = {
    "termios": (lambda: termios.error(errno.EIO, "Input/output error"), DeviceNotFound),
    "serial-no-errno": (lambda: serial.SerialException(
        "device reports readiness to read but returned no data (device disconnected or multiple access on port?)"),
        DeviceNotFound),
    "serial-errno": (lambda: serial.SerialException(errno.ENOENT, "could not open port"), DeviceNotFound),
    "oserror-eio": (lambda: OSError(errno.EIO, "Input/output error"), DeviceNotFound),
    "oserror-timeout": (lambda: OSError(errno.ETIMEDOUT, "Connection timed out"), DeviceNotFound),
    "oserror-bare": (lambda: OSError("no errno at all"), DeviceNotFound),
    "chipset-error-frame": (chip_error, DeviceError),
    "nfc-clf-error": (lambda: nfc.clf.UnsupportedTargetError("106B"), DeviceError),
    "unexpected": (lambda: TypeError("'NoneType' object is not subscriptable"), DeviceError),
}


class FakeSerial:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    TYPE = "TTY"
    opened: list[FakeTransport] = []

    def __init__(self, port=None) -> None:
        self.port = port
        self.tty = FakeSerial()
        FakeTransport.opened.append(self)

    def close(self) -> None:
        raise termios.error(errno.EIO, "Input/output error")  # flushOutput on a dead port


class FakeDevice:
    def __init__(self, transport) -> None:
        self.chipset = type("Chipset", (), {"transport": transport})()

    def __str__(self) -> str:
        return "fake PN532"


class FakeFrontend:
    """Stands in for ``nfc.ContactlessFrontend``; ``sense`` raises what the test sets."""

    raise_on_sense: BaseException | None = None
    raise_on_close: BaseException | None = None

    def __init__(self) -> None:
        self.device = None
        self.lock = threading.RLock()
        self.target = None

    def open(self, path):  # the backend opens tty:/… paths through the driver instead
        raise AssertionError("not used for absolute tty paths")

    def sense(self, *targets, **options):
        if FakeFrontend.raise_on_sense is not None:
            raise FakeFrontend.raise_on_sense
        return None

    def close(self) -> None:
        if FakeFrontend.raise_on_close is not None:
            raise FakeFrontend.raise_on_close
        self.device = None


@pytest.fixture
def fake_nfcpy(monkeypatch):
    """nfcpy's frontend, pn532 driver init and TTY transport replaced; returns the init call log."""
    FakeFrontend.raise_on_sense = FakeFrontend.raise_on_close = None
    FakeTransport.opened = []
    inits: list[object] = []
    init_error: list[BaseException] = []

    def init(transport):
        inits.append(transport)
        if init_error:
            raise init_error.pop(0)
        return FakeDevice(transport)

    monkeypatch.setattr(nfc, "ContactlessFrontend", FakeFrontend)
    monkeypatch.setattr(nfc.clf.pn532, "init", init)
    monkeypatch.setattr(nfc.clf.transport, "TTY", FakeTransport)
    return inits, init_error


@pytest.mark.parametrize("case", list(READER_FAILURES))
def test_wait_for_card_translates_every_vendor_error(fake_nfcpy, case):
    make, expected = READER_FAILURES[case]
    reader = backend.open_reader(PATH)
    reader.start()
    FakeFrontend.raise_on_sense = make()
    with pytest.raises(expected) as raised:
        reader.wait_for_card(0)
    assert type(raised.value) is expected
    assert "fake-pn532" in str(raised.value)
    assert reader.is_card_present() is False
    reader.close()


def test_a_lost_reader_is_reopened_by_start(fake_nfcpy):
    inits, _ = fake_nfcpy
    reader = backend.open_reader(PATH)
    reader.start()
    FakeFrontend.raise_on_sense = serial.SerialException("read failed: [Errno 5] Input/output error")
    with pytest.raises(DeviceNotFound):
        reader.wait_for_card(0)
    assert FakeTransport.opened[0].tty.closed  # the port was released although nfcpy's close failed
    FakeFrontend.raise_on_sense = None
    reader.start()
    assert len(inits) == 2
    assert reader.wait_for_card(0) is None
    reader.close()


def test_a_chip_error_frame_keeps_the_reader_open(fake_nfcpy):
    inits, _ = fake_nfcpy
    reader = backend.open_reader(PATH)
    reader.start()
    FakeFrontend.raise_on_sense = chip_error()
    with pytest.raises(DeviceError):
        reader.wait_for_card(0)
    FakeFrontend.raise_on_sense = None
    assert reader.wait_for_card(0) is None  # retried on the same frontend: no reopen
    assert len(inits) == 1
    reader.close()


@pytest.mark.parametrize("case", list(READER_FAILURES))
def test_start_translates_every_vendor_error(fake_nfcpy, case):
    _, init_error = fake_nfcpy
    make, _expected = READER_FAILURES[case]
    init_error.append(make())
    reader = backend.open_reader(PATH)
    with pytest.raises(DeviceNotFound, match="NFC reader 'tty:/dev/fake-pn532:pn532'"):
        reader.start()  # a reader that cannot start is not usable, whatever the cause
    assert FakeTransport.opened[-1].tty.closed
    reader.start()  # and the next try opens it
    reader.close()


@pytest.mark.parametrize("error", [termios.error(errno.EIO, "Input/output error"),
                                   serial.SerialException("write failed"), chip_error(), ValueError("odd")])
def test_close_never_raises(fake_nfcpy, error):
    reader = backend.open_reader(PATH)
    reader.start()
    FakeFrontend.raise_on_close = error
    reader.close()
    reader.close()
    assert FakeTransport.opened[0].tty.closed


class FakeTag:
    def __init__(self, error: BaseException, present) -> None:
        self.error = error
        self.present = present

    def transceive(self, data):
        raise self.error

    @property
    def is_present(self):
        if isinstance(self.present, BaseException):
            raise self.present
        return self.present


#: (vendor exception, card still present?, what transmit must raise)
TRANSMIT_FAILURES = {
    "termios": (lambda: termios.error(errno.EIO, "Input/output error"), True, DeviceNotFound),
    "serial-no-errno": (lambda: serial.SerialException("read failed: [Errno 5] Input/output error"), True,
                        DeviceNotFound),
    "oserror": (lambda: OSError(errno.ENODEV, "No such device"), True, DeviceNotFound),
    "chip-error-card-present": (chip_error, True, LinkTimeout),
    "chip-error-card-gone": (chip_error, False, CardRemoved),
    "timeout-card-present": (lambda: nfc.clf.TimeoutError("no answer"), True, LinkTimeout),
    "timeout-card-gone": (lambda: nfc.clf.TimeoutError("no answer"), False, CardRemoved),
    "tag-error-probe-fails": (lambda: nfc.tag.TagCommandError(nfc.tag.TIMEOUT_ERROR),
                              termios.error(errno.EIO, "Input/output error"), CardRemoved),
    "unexpected": (lambda: AttributeError("'NoneType' object has no attribute 'write'"), True, DeviceError),
}


@pytest.mark.parametrize("case", list(TRANSMIT_FAILURES))
def test_transmit_translates_every_vendor_error(fake_nfcpy, case):
    make, present, expected = TRANSMIT_FAILURES[case]
    reader = backend.open_reader(PATH)
    reader.start()
    link = backend.NfcpyCardLink(reader, FakeTag(make(), present), b"\x3b")
    reader._link = link
    with pytest.raises(expected) as raised:
        link.transmit(b"\x00\xb0\x00\x00\x10")
    assert type(raised.value) is expected
    if expected is DeviceNotFound:
        assert reader._clf is None  # dropped: the watcher's next start() reopens it
    reader.close()


def test_presence_probe_on_a_dead_reader_is_false_not_an_exception(fake_nfcpy):
    reader = backend.open_reader(PATH)
    reader.start()
    reader._link = backend.NfcpyCardLink(reader, FakeTag(chip_error(), termios.error(5, "EIO")), b"\x3b")
    assert reader.is_card_present() is False
    reader.close()


def test_translate_returns_hal_errors_only():
    for make, _ in READER_FAILURES.values():
        assert isinstance(backend.translate(make(), PATH, "testing"), HalError)
