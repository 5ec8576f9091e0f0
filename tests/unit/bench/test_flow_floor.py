"""The flow benchmark's floor arithmetic: which blocks count, the wire model, quantiles, ratios."""

import pytest

from bench.flow_bench import (
    apdu_blocks,
    block_kind,
    compare,
    floors,
    link_floor,
    overlap_floor,
    quantile,
    sequential_sum,
)
from hal.sim.link_timing import minimal_thru_uart_bytes, rf_exchange_seconds, uart_seconds


def test_block_kinds_from_the_pcb():
    assert block_kind(0x02) == block_kind(0x03) == "i"
    assert block_kind(0x0A) == "i"  # with a CID
    assert block_kind(0x12) == "i"  # chaining
    assert block_kind(0xA2) == block_kind(0xA3) == "r_ack"
    assert block_kind(0xB2) == block_kind(0xB3) == "r_nak"  # nfcpy's presence check
    assert block_kind(0xC2) == block_kind(0xF2) == "s"
    assert block_kind(0x05) == block_kind(0x1D) == "activation"


def test_only_the_blocks_that_move_apdus_count():
    blocks = [(0x05, 3, 12, 0.0), (0x1D, 9, 1, 0.0), (0x02, 8, 3, 0.0), (0xB3, 1, 1, 0.0),
              (0x13, 60, 1, 0.0), (0xA2, 1, 200, 0.0), (0xF2, 2, 2, 0.0)]
    assert apdu_blocks(blocks) == [(8, 3), (60, 1), (1, 200)]


def test_link_floor_is_uart_framing_plus_rf_per_block():
    exchanges = [(8, 3), (12, 254)]
    floor = link_floor(exchanges, 115200)
    uart = sum(uart_seconds(minimal_thru_uart_bytes(c, r), 115200) for c, r in exchanges)
    rf = sum(rf_exchange_seconds(c, r) for c, r in exchanges)
    assert floor["uart_s"] == pytest.approx(uart) and floor["rf_s"] == pytest.approx(rf)
    assert floor["total_s"] == pytest.approx(uart + rf)
    # one 254-byte answer: (7+2+12) + ACK 6 + (10+3+254: an extended frame) = 294 UART bytes, 25.5 ms
    assert link_floor([(12, 254)], 115200)["uart_s"] == pytest.approx(294 * 10 / 115200)
    assert link_floor(exchanges, 921600)["rf_s"] == pytest.approx(rf), "RF time does not depend on the UART"
    assert link_floor(exchanges, 921600)["uart_s"] == pytest.approx(uart / 8)


def test_quantile_interpolates_like_numpy():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert quantile(values, 0.5) == 3.0
    assert quantile(values, 0.0) == 1.0 and quantile(values, 1.0) == 5.0
    assert quantile(values, 0.95) == pytest.approx(4.8)
    assert quantile(list(range(1, 51)), 0.95) == pytest.approx(47.55)
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_overlap_floor_and_sequential_sum():
    assert overlap_floor(2.0, 0.8) == 2.0
    assert overlap_floor(0.4, 0.8) == 0.8
    assert overlap_floor(0.4, None) == 0.4  # the PIN path has no face part
    assert sequential_sum(2.0, 0.8) == pytest.approx(2.8)
    assert sequential_sum(0.4, None) == 0.4


def test_floors_take_each_part_at_the_same_quantile():
    chip_floor = [2.0] * 10
    face = [0.5 + 0.1 * i for i in range(10)]  # p50 0.95, p95 1.355
    chip_alone = [2.1] * 10
    out = floors(chip_floor, face, chip_alone)
    assert out["overlap_floor_s"] == {"p50": 2.0, "p95": 2.0}
    assert out["sequential_s"]["p50"] == pytest.approx(2.1 + 0.95)
    assert out["sequential_s"]["p95"] == pytest.approx(2.1 + 1.355)
    slow_face = floors(chip_floor, [3.0] * 10, chip_alone)
    assert slow_face["overlap_floor_s"] == {"p50": 3.0, "p95": 3.0}
    pin = floors([0.4] * 3, None, [0.45] * 3)
    assert pin["overlap_floor_s"]["p50"] == 0.4 and pin["sequential_s"]["p95"] == pytest.approx(0.45)


def test_ratios_are_quantile_by_quantile():
    ratios = compare({"p50": 3.0, "p95": 4.0}, {"p50": 2.0, "p95": 2.5}, {"p50": 2.5, "p95": 3.2})
    assert ratios["ratio_to_floor"] == {"p50": 1.5, "p95": 1.6}
    assert ratios["ratio_to_sequential"] == {"p50": pytest.approx(1.2), "p95": pytest.approx(1.25)}
