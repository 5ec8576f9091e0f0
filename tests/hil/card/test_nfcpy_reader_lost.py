"""A PN532 that goes away and comes back: the nfcpy backend raises only HalError, then reopens it.

The emulator is "killed" by closing it (its pty master closes, as when the process dies or a USB
adapter is pulled), then a new emulator is started on the same link path, as a restarted
``card serve`` or a re-plugged adapter under a udev name would be.
"""

from __future__ import annotations

import threading

import pytest

from hal.errors import DeviceNotFound, HalError
from hal.nfc.nfcpy import open_reader
from hal.sim.iso14443b import TypeBCard
from hal.sim.pn532_emulator import Pn532Emulator
from tests.hil.card.standin_card import StandInCard

pytestmark = pytest.mark.hil

AID = bytes.fromhex("D392F000260100000001")
FILE = bytes(range(256)) * 2


def standin() -> StandInCard:
    return StandInCard({(AID, 0x000A): FILE})


def read_file(link) -> bytes:
    assert link.transmit(b"\x00\xa4\x04\x0c\x0a" + AID) == (b"", 0x9000)
    assert link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x0a") == (b"", 0x9000)
    data, sw = link.transmit(b"\x00\xb0\x00\x00\xfb")
    assert sw == 0x9000
    return data


@pytest.fixture
def emulators():
    started: list[Pn532Emulator] = []

    def start(link) -> Pn532Emulator:
        emulator = Pn532Emulator(TypeBCard(standin()), link=link, emulate_time=False).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.close()


def only_hal_errors(call):
    """Run ``call``; return its result or the HalError it raised (anything else fails the test)."""
    try:
        return call()
    except HalError as exc:
        return exc


def test_reader_lost_then_back_on_the_same_link(tmp_path, emulators):
    link_path = tmp_path / "pn532"
    first = emulators(link_path)
    reader = open_reader(f"tty:{link_path}:pn532")
    try:
        reader.start()
        card_link = reader.wait_for_card(1.0)
        assert read_file(card_link) == FILE[:251]

        first.close()  # the PN532 is gone, with a card link open

        outcomes = [
            only_hal_errors(lambda: card_link.transmit(b"\x00\xb0\x00\x00\x10")),
            only_hal_errors(reader.is_card_present),
            only_hal_errors(lambda: reader.wait_for_card(0.2)),
            only_hal_errors(lambda: reader.wait_for_card(0)),
            only_hal_errors(reader.start),  # the link is gone too: nothing to reopen yet
            only_hal_errors(reader.close),
            only_hal_errors(reader.start),
        ]
        assert isinstance(outcomes[0], HalError)
        assert outcomes[1] in (False,) or isinstance(outcomes[1], HalError)
        for outcome in outcomes[2:5] + outcomes[6:]:
            assert isinstance(outcome, DeviceNotFound), outcome
        assert outcomes[5] is None
        assert "nfcpy:" in str(outcomes[2]) or "tty" in str(outcomes[2])

        emulators(link_path)  # restarted on the same link path: a new pty behind it
        reader.start()
        again = reader.wait_for_card(1.0)
        assert again is not None and again is not card_link
        assert read_file(again) == FILE[:251]
    finally:
        reader.close()


def test_reader_lost_while_idle_raises_device_not_found(tmp_path, emulators):
    link_path = tmp_path / "pn532"
    emulator = emulators(link_path)
    emulator.card.remove()
    reader = open_reader(f"tty:{link_path}:pn532")
    try:
        reader.start()
        assert reader.wait_for_card(0.1) is None
        emulator.close()
        with pytest.raises(DeviceNotFound, match="stopped answering|no longer a usable serial port"):
            reader.wait_for_card(0.3)
        assert reader.is_card_present() is False
    finally:
        reader.close()


def test_watcher_reports_the_reader_lost_and_back(tmp_path, emulators):
    link_path = tmp_path / "pn532"
    first = emulators(link_path)
    reader = open_reader(f"tty:{link_path}:pn532")
    reader.poll_interval_s = 0.05
    reader.retry_interval_s = 0.1
    changes: list[HalError | None] = []
    presented = []
    tapped = threading.Event()
    changed = threading.Condition()

    def on_change(error):
        with changed:
            changes.append(error)
            changed.notify_all()

    def on_card(link):
        presented.append(read_file(link))
        tapped.set()

    reader.when_reader_changed = on_change
    reader.when_card_presented = on_card
    reader.start()
    reader.watch()
    try:
        assert tapped.wait(3)
        tapped.clear()
        first.close()
        with changed:
            assert changed.wait_for(lambda: len(changes) >= 1, timeout=5)
        assert isinstance(changes[0], DeviceNotFound)
        emulators(link_path)
        with changed:
            assert changed.wait_for(lambda: None in changes, timeout=5)
        assert tapped.wait(3)
        assert presented == [FILE[:251], FILE[:251]]
    finally:
        reader.close()
