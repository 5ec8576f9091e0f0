"""nfcpy's real PN532 driver against the PN532 emulator on a pty, through our nfcpy backend."""

from __future__ import annotations

import os
import uuid

import pytest

from hal.errors import BadBackend, CardRemoved, DeviceNotFound
from hal.nfc.nfcpy import PN532_MAX_RESPONSE_BYTES, NfcpyReader, open_reader
from hal.registry import open_device
from tests.hil.card.standin_card import StandInCard

pytestmark = pytest.mark.hil

AID = bytes.fromhex("D392F000260100000001")
BIG_FILE = bytes(range(256)) * 6


def standin() -> StandInCard:
    return StandInCard({(AID, 0x000A): BIG_FILE})


def select(link) -> None:
    assert link.transmit(b"\x00\xa4\x04\x0c\x0a" + AID) == (b"", 0x9000)
    assert link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x0a") == (b"", 0x9000)


@pytest.fixture
def reader_on(pn532):
    opened: list[NfcpyReader] = []

    def open_on(card, **options):
        emulator, radio = pn532(card, **options)
        reader = open_reader(f"tty:{emulator.path}:pn532")
        reader.start()
        opened.append(reader)
        return reader, emulator, radio

    yield open_on
    for reader in opened:
        reader.close()


def test_real_driver_starts_and_reads_a_type_b_card(reader_on):
    card = standin()
    reader, emulator, _ = reader_on(card)
    assert emulator.baud == 921600  # nfcpy negotiated the high-speed UART, as on real hardware
    assert "PN532v1.6" in reader.describe()
    link = reader.wait_for_card(1.0)
    assert link is not None
    assert link.atr[:4] == bytes.fromhex("3B888001") and len(link.atr) == 13
    assert link.max_response_bytes == PN532_MAX_RESPONSE_BYTES
    select(link)
    data = b""
    while len(data) < len(BIG_FILE):
        size = min(link.max_response_bytes, len(BIG_FILE) - len(data))
        chunk, sw = link.transmit(bytes([0x00, 0xB0, len(data) >> 8, len(data) & 0xFF, size]))
        assert sw == 0x9000
        data += chunk
    assert data == BIG_FILE
    # the card saw exactly our APDUs: nothing lost or repeated by the ISO-DEP layers
    assert len(card.apdus) == 2 + -(-len(BIG_FILE) // PN532_MAX_RESPONSE_BYTES)
    assert card.powered_on == 1


def test_chaining_both_ways(reader_on):
    """256-byte answers are chained by the card; 255-byte commands are chained by nfcpy."""
    card = standin()
    reader, emulator, _ = reader_on(card)
    link = reader.wait_for_card(1.0)
    select(link)
    data, sw = link.transmit(b"\x00\xb0\x00\x00\x00")
    assert (data, sw) == (BIG_FILE[:256], 0x9000)
    payload = bytes(range(255))
    assert link.transmit(b"\x80\xee\x00\x00\xff" + payload) == (payload, 0x9000)
    sizes = [command for command, _ in emulator.wire.rf_exchanges]
    assert max(sizes) <= 256 and len(card.apdus) == 4


def test_status_words_pass_through_untouched(reader_on):
    reader, _, _ = reader_on(standin())
    link = reader.wait_for_card(1.0)
    assert link.transmit(b"\x00\xa4\x04\x0c\x02\xa0\x00") == (b"", 0x6A82)
    link.transmit(b"\x00\xa4\x04\x0c\x0a" + AID)
    link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x18")
    assert link.transmit(b"\x00\x20\x00\x80") == (b"", 0x63C3)


def test_card_pulled_mid_read_raises_card_removed(reader_on):
    card = standin()
    reader, _, radio = reader_on(card)
    link = reader.wait_for_card(1.0)
    select(link)
    radio.pull_after_commands(1)
    link.transmit(b"\x00\xb0\x00\x00\x10")
    with pytest.raises(CardRemoved):
        link.transmit(b"\x00\xb0\x00\x10\x10")
    with pytest.raises(CardRemoved):  # the link stays dead
        link.transmit(b"\x00\xb0\x00\x10\x10")
    assert not reader.is_card_present()
    assert reader.wait_for_card(0) is None
    radio.insert()
    again = reader.wait_for_card(1.0)
    assert again is not None and again is not link
    select(again)  # a new tap: the card powered up afresh
    assert card.powered_on == 2


def test_empty_reader_finds_no_card(reader_on):
    card = standin()
    reader, _, radio = reader_on(card)
    radio.remove()
    assert reader.wait_for_card(0.2) is None
    assert card.powered_on == 0


def test_watcher_reports_tap_and_removal(reader_on):
    import threading

    reader, _, radio = reader_on(standin())
    presented, removed = threading.Event(), threading.Event()
    reader.when_card_presented = lambda link: presented.set()
    reader.when_card_removed = removed.set
    reader.poll_interval_s = 0.05
    reader.watch()
    try:
        assert presented.wait(3)
        radio.remove()
        assert removed.wait(5)
    finally:
        reader.stop_watching()


def test_nfcpy_search_path_through_a_dev_link(pn532):
    if not os.access("/dev", os.W_OK):
        pytest.skip("cannot create a link in /dev (not root)")
    name = f"uketsuke-pn532-{uuid.uuid4().hex[:6]}"
    emulator, _ = pn532(standin(), link=name)
    assert os.path.islink(f"/dev/{name}")
    reader = open_device("nfc", f"nfcpy:tty:{name}:pn532")
    try:
        reader.start()
        link = reader.wait_for_card(1.0)
        select(link)
    finally:
        reader.close()
        emulator.close()
    assert not os.path.lexists(f"/dev/{name}")


def test_missing_device_and_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(DeviceNotFound, match="no NFC reader found"):
        open_reader("tty:NoSuchPort0:pn532").start()
    with pytest.raises(DeviceNotFound, match="cannot open"):
        open_reader(f"tty:{tmp_path}/missing:pn532").start()
    with pytest.raises(BadBackend, match="needs a device path"):
        open_reader("")
    with pytest.raises(BadBackend, match="must start with"):
        open_reader("serial0")


def test_pin_never_reaches_nfcpy_debug_logs(reader_on, caplog):
    import logging

    reader, _, _ = reader_on(standin())
    link = reader.wait_for_card(1.0)
    link.transmit(b"\x00\xa4\x04\x0c\x0a" + AID)
    link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x18")
    with caplog.at_level(logging.DEBUG - 1):
        for name in ("nfc", "nfc.tag.tt4", "nfc.clf", "nfc.clf.transport", "nfc.clf.pn532"):
            logging.getLogger(name).setLevel(logging.DEBUG - 1)
        try:
            link.transmit(b"\x00\xa4\x02\x0c\x02\x00\x18")  # logged: proves the logs are on
            assert link.transmit(b"\x00\x20\x00\x80\x04" + b"9876") == (b"", 0x63C2)
        finally:
            for name in ("nfc", "nfc.tag.tt4", "nfc.clf", "nfc.clf.transport", "nfc.clf.pn532"):
                logging.getLogger(name).setLevel(logging.NOTSET)
    text = " ".join(record.getMessage() for record in caplog.records)
    assert "00a4020c020018" in text.replace(" ", "")
    assert b"9876".hex() not in text.replace(" ", "") and "9876" not in text


def test_uart_stays_at_the_emulated_maximum_and_time_is_accounted(reader_on):
    """A UART that cannot go faster (Pi mini-UART): nfcpy asks for 921600, the line stays at 115200."""
    reader, emulator, _ = reader_on(standin(), max_baud=115200, emulate_time=True)
    assert emulator.baud == 115200
    link = reader.wait_for_card(1.0)
    select(link)
    emulator.wire.reset()
    assert link.transmit(b"\x00\xb0\x00\x00\xfb") == (BIG_FILE[:251], 0x9000)
    wire = emulator.wire
    assert wire.rf_exchanges == [(6, 254)]  # one block each way, no chaining
    sent = wire.uart_bytes_to_pn532 + wire.uart_bytes_to_host
    assert wire.uart_seconds == pytest.approx(sent * 10 / 115200)
