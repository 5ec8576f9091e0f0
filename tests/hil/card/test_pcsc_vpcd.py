"""Our pyscard backend against a real pcscd with the vpcd driver, and a virtual card served over TCP."""

from __future__ import annotations

import threading

import pytest

from hal.errors import CardRemoved, DeviceNotFound
from hal.nfc.pcsc import open_reader
from hal.registry import open_device
from hal.sim.vpcd import parse_address
from tests.hil.card.standin_card import StandInCard

pytestmark = pytest.mark.hil

AID = bytes.fromhex("D392F000260100000001")
FILE = bytes(range(256)) * 3


def standin() -> StandInCard:
    return StandInCard({(AID, 0x000A): FILE})


@pytest.fixture
def reader(pcscd):
    device = open_device("nfc", f"pcsc:{pcscd}")
    device.start()
    yield device
    device.close()


def test_reader_by_name_prefix_and_first(pcscd):
    for argument in (pcscd, "Virtual PCD", ""):
        device = open_reader(argument)
        device.start()
        try:
            assert device.name.startswith("Virtual PCD")
        finally:
            device.close()
    with pytest.raises(DeviceNotFound, match="no PC/SC reader named 'Nope'.*Virtual PCD 00 00"):
        open_reader("Nope").start()


def test_no_card_then_card_inserted(reader, vpcd_insert):
    assert not reader.is_card_present()
    assert reader.wait_for_card(0) is None
    card = standin()
    vpcd_insert(card)
    link = reader.wait_for_card(5)
    assert link is not None and link.atr == card.atr
    assert reader.is_card_present()
    assert link.transmit(b"\x00\xa4\x04\x0c\x0a" + AID) == (b"", 0x9000)
    assert link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x0a") == (b"", 0x9000)
    assert link.transmit(b"\x00\xb0\x00\x00\x00") == (FILE[:256], 0x9000)
    assert link.transmit(b"\x00\xb0\x02\x00\x00") == (FILE[512:], 0x9000)
    assert link.transmit(b"\x00\x20\x00\x80") == (b"", 0x63C3)
    assert link.max_response_bytes == 256
    assert card.powered_on >= 1


def test_card_pulled_mid_read_raises_card_removed(reader, vpcd_insert):
    vpcd = vpcd_insert(standin())
    link = reader.wait_for_card(5)
    link.transmit(b"\x00\xa4\x04\x0c\x0a" + AID)
    vpcd.pull_after_commands(1)
    link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x0a")
    with pytest.raises(CardRemoved):
        link.transmit(b"\x00\xb0\x00\x00\x00")
    with pytest.raises(CardRemoved):
        link.transmit(b"\x00\xb0\x00\x00\x00")


def test_watcher_reports_insertion_and_removal(reader, vpcd_insert):
    presented, removed = threading.Event(), threading.Event()
    atrs = []
    reader.when_card_presented = lambda link: (atrs.append(link.atr), presented.set())
    reader.when_card_removed = removed.set
    reader.poll_interval_s = 0.05
    reader.watch()
    try:
        vpcd = vpcd_insert(standin())
        assert presented.wait(5)
        vpcd.remove()
        assert removed.wait(5)
    finally:
        reader.stop_watching()
    assert atrs == [StandInCard.ATR]


def test_vpcd_address_parsing():
    assert parse_address("") == ("127.0.0.1", 35963)
    assert parse_address("10.0.0.2:35964") == ("10.0.0.2", 35964)
    assert parse_address(":35964") == ("127.0.0.1", 35964)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("host:port")


def test_no_pcscd_is_a_clear_device_not_found(tmp_path):
    """Run in a child whose PC/SC client looks for pcscd's socket where there is none."""
    import os
    import subprocess
    import sys

    code = (
        "from hal.nfc.pcsc import open_reader\n"
        "from hal.errors import DeviceNotFound\n"
        "try:\n    open_reader('').start()\nexcept DeviceNotFound as exc:\n    print('DeviceNotFound:', exc)\n"
    )
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert result.stdout.startswith("DeviceNotFound:"), result.stdout + result.stderr
    assert "is pcscd running?" in result.stdout


def test_a_card_worker_thread_transmits_through_its_own_context(reader, vpcd_insert):
    """The watcher hands the link to a worker thread, as the kiosk does: real pcscd, no shared context."""
    done = threading.Event()
    answers = []

    def work(link):
        answers.append(link.transmit(b"\x00\xa4\x04\x0c\x0a" + AID))
        answers.append(link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x0a"))
        answers.append(link.transmit(b"\x00\xb0\x00\x00\x10"))
        done.set()

    reader.when_card_presented = lambda link: threading.Thread(target=work, args=(link,), name="card-worker").start()
    reader.poll_interval_s = 0.05
    reader.watch()
    try:
        vpcd_insert(standin())
        assert done.wait(5)
        assert answers == [(b"", 0x9000), (b"", 0x9000), (FILE[:16], 0x9000)]
        assert len(reader._contexts) >= 2  # the watcher's and the worker's (the main thread's too)
    finally:
        reader.stop_watching()
