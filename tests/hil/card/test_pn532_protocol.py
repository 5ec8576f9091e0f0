"""PN532 framing, the Type B card's ISO 14443-3/-4 rules, and the link-floor model, below nfcpy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.sim.iso14443b import TypeBCard
from hal.sim.link_timing import WireLog, minimal_thru_uart_bytes, rf_frame_seconds, uart_seconds
from hal.sim.pn532_frames import ACK, build_frame, split_frame
from tests.hil.card.standin_card import StandInCard

AID = bytes.fromhex("D392F000260100000001")


def host_frame(payload: bytes) -> bytes:
    """A host information frame (``D4`` + payload), normal or extended, as nfcpy builds it."""
    data = b"\xd4" + payload
    if len(data) < 256:
        head = bytes([0, 0, 0xFF, len(data), (-len(data)) & 0xFF])
    else:
        high, low = len(data) >> 8, len(data) & 0xFF
        head = bytes([0, 0, 0xFF, 0xFF, 0xFF, high, low, (-(high + low)) & 0xFF])
    return head + data + bytes([(-sum(data)) & 0xFF, 0])


def test_frames_split_across_reads_with_preamble():
    stream = bytes(10) + host_frame(b"\x02") + ACK + host_frame(b"\x00" * 300)
    frame = split_frame(stream[:12])
    assert frame is None
    frame = split_frame(stream)
    assert (frame.kind, frame.data) == ("info", b"\xd4\x02") and frame.wire_bytes == 10 + 9
    rest = stream[frame.wire_bytes :]
    ack = split_frame(rest)
    assert ack.kind == "ack" and ack.wire_bytes == 6
    extended = split_frame(rest[6:])
    assert extended.kind == "info" and len(extended.data) == 301


def test_bad_checksum_is_reported_not_raised():
    frame = bytearray(host_frame(b"\x02"))
    frame[-2] ^= 0xFF
    assert split_frame(bytes(frame)).kind == "bad"


def test_chip_frames_switch_to_extended_above_254_bytes():
    assert build_frame(b"\x43" + bytes(252))[3] == 254  # TFI + 253 bytes: still a normal frame
    long = build_frame(b"\x43" + bytes(254))
    assert long[3:5] == b"\xff\xff" and (long[5] << 8 | long[6]) == 256


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_frame_parser_never_crashes(blob):
    frame = split_frame(blob)
    assert frame is None or 0 < frame.wire_bytes <= len(blob)


def activated(fsci: int = 8) -> tuple[TypeBCard, StandInCard]:
    card = StandInCard({(AID, 0x000A): bytes(range(256)) * 2})
    radio = TypeBCard(card, fsci=fsci)
    atqb = radio.receive(b"\x05\x00\x08")
    assert atqb[0] == 0x50 and atqb[10] & 0x0F == 0x01  # ISO-DEP
    assert radio.receive(b"\x1d" + atqb[1:5] + b"\x00\x08\x01\x00") == b"\x00"
    return radio, card


def test_deselect_with_cid_then_wupb_and_second_attrib():
    card = StandInCard({})
    radio = TypeBCard(card)
    atqb = radio.receive(b"\x05\x00\x00")
    assert radio.receive(b"\x1d" + atqb[1:5] + b"\x00\x05\x01\x01") == b"\x01"  # the PN532's ATTRIB, CID 1
    assert radio.receive(b"\x02\x00\xa4\x04\x0c\x0a" + AID) is None  # without CID: not for us
    assert radio.receive(b"\xca\x01") == b"\xca\x01"  # DESELECT with CID 1
    assert radio.receive(b"\x05\x00\x00") is None  # halted: REQB ignored
    assert radio.receive(b"\x05\x00\x08") == atqb  # WUPB wakes it
    assert radio.receive(b"\x1d" + atqb[1:5] + b"\x00\x08\x01\x00") == b"\x00"
    assert radio.receive(b"\x02\x00\xa4\x04\x0c\x0a" + AID)[0] == 0x02
    assert card.powered_on == 1


def test_lost_answer_is_retransmitted_on_nak_and_ack_for_unknown_block():
    radio, card = activated()
    answer = radio.receive(b"\x02\x00\xa4\x04\x0c\x0a" + AID)
    assert answer == b"\x02\x90\x00"
    assert radio.receive(b"\xb2") == answer  # R(NAK) for block 0: our answer got lost
    assert len(card.apdus) == 1  # ... and the card did not run the command twice
    assert radio.receive(b"\xb3") == b"\xa2"  # R(NAK) for a block we never saw: R(ACK) with ours


def test_response_chaining_follows_fsd():
    radio, _ = activated()
    radio.receive(b"\x02\x00\xa4\x04\x0c\x0a" + AID)
    radio.receive(b"\x03\x00\xa4\x02\x0c\x02\x00\x0a")
    first = radio.receive(b"\x02\x00\xb0\x00\x00\x00")
    assert first[0] == 0x12 and len(first) == 254  # chained, FSD 256 − CRC
    second = radio.receive(b"\xa3")
    assert second[0] == 0x03 and first[1:] + second[1:] == bytes(range(256)) + b"\x90\x00"


def test_command_chaining_from_the_reader():
    radio, card = activated()
    apdu = b"\x80\xee\x00\x00\xc8" + bytes(range(200))
    assert radio.receive(b"\x12" + apdu[:100]) == b"\xa2"
    assert radio.receive(b"\x03" + apdu[100:]) == b"\x03" + bytes(range(200)) + b"\x90\x00"
    assert card.apdus == [apdu]


def test_removed_card_is_silent_and_powers_up_again():
    radio, card = activated()
    radio.pull_after_commands(0)
    assert radio.receive(b"\x02\x00\xa4\x04\x0c\x0a" + AID) is None
    assert not radio.in_field and radio.receive(b"\x05\x00\x08") is None
    radio.insert()
    assert radio.receive(b"\x05\x00\x08") is not None
    assert card.powered_on == 2


def test_floor_model_matches_the_reference_figures():
    # the HIL reference: reading 1.5 KB costs ≈ 163 ms of RF; a 251-byte answer takes one block
    assert rf_frame_seconds(254) == pytest.approx((256 * 10 + 22) * 128 / 13.56e6)
    assert uart_seconds(11520, 115200) == pytest.approx(1.0)
    log = WireLog(rf_exchanges=[(6, 254)] * 6)
    floor = log.floor_seconds(115200)
    assert 0.13 < floor["rf_s"] < 0.17
    assert floor["uart_bytes"] == 6 * minimal_thru_uart_bytes(6, 254)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_emulator_answers_any_host_command(payload):
    """Whatever the host sends, the chip answers (ACK + answer or error frame) and keeps going."""
    from hal.sim.pn532_emulator import Pn532Emulator

    emulator = Pn532Emulator(TypeBCard(StandInCard({})), emulate_time=False)
    emulator._on_frame("info", b"\xd4\x4a\x01\x03\x00", 0.0)  # field on, card activated (CID 1)
    assert emulator.card.state == "active"
    emulator._on_frame("info", b"\xd4" + payload, 0.0)
    emulator._on_frame("info", b"\xd4\x42" + payload, 0.0)  # the same bytes as a frame to the card
    assert emulator.wire.uart_bytes_to_host >= 3 * 6
