"""Rendered frames through the real pipeline: most read right, none accepted wrong, refusals are typed."""

import datetime as dt

import numpy as np
import pytest

from firmware.card.ocr.gate import Reject, TwoFrameGate
from firmware.card.ocr.reader import CardFaceReader, read_collation_b
from firmware.errors import CollationRefused
from hal.sim.card_face import CardFaceFields, random_fields, render_card_face
from provisioning.card_ocr_cmd import binomial_upper_bound

TODAY = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def reader(recognizer):
    return CardFaceReader(recognizer, today=TODAY)


def test_ten_rendered_frames_mostly_right_and_never_accepted_wrong(reader):
    rng = np.random.default_rng(2024)
    right = accepted = 0
    for _ in range(5):
        fields = random_fields(rng, today=TODAY)
        gate = TwoFrameGate()
        for _ in range(2):
            frame = render_card_face(fields, rng)
            reads = reader.read_fields(frame)
            assert reads is not None
            right += (reads.birth.text.replace(" ", "") == fields.birth_line.replace(" ", "")
                      and reads.expiry.text.replace(" ", "") == fields.expiry_line.replace(" ", "")
                      and reads.code.text == fields.security_code)
            verdict = reader.judge(frame)
            if verdict.passed:
                assert verdict.digits == fields.collation_b
            result = gate.feed(verdict)
            if result is not None:
                accepted += 1
                assert result.digits == fields.collation_b
    assert right >= 8
    assert accepted >= 3


def test_reiwa_card_is_read_despite_the_ling_alias(reader):
    fields = CardFaceFields("番号\u3000蓮", ("東京都", "一丁目"), dt.date(2021, 3, 9), "男",
                            dt.date(2026, 3, 9), "7310")
    rng = np.random.default_rng(5)
    frames = [render_card_face(fields, rng) for _ in range(4)]
    result = read_collation_b(frames, reader)
    assert result.digits == fields.collation_b == "03030920267310"
    assert not frames[0].any()  # frames are zeroed once read


def test_no_card_in_view_is_refused_with_a_typed_error(reader):
    frames = [np.full((480, 640, 3), 40, np.uint8) for _ in range(3)]
    assert reader.judge(frames[0].copy()).reject is Reject.NO_CARD
    with pytest.raises(CollationRefused, match="PIN"):
        read_collation_b(frames, reader)


def test_bad_frame_type_is_a_clear_error(reader):
    with pytest.raises(ValueError, match="RGB uint8"):
        reader.judge(np.zeros((10, 10), np.float32))


def test_rule_of_three_bound_and_exact_bound():
    assert binomial_upper_bound(0, 4000) == pytest.approx(3 / 4000, rel=0.01)
    assert 1 / 100 < binomial_upper_bound(1, 100) < 0.05  # exact: 0.0466


def test_ocr_eval_command_registers_and_reports_json(recognizer):
    import json

    import typer
    from typer.testing import CliRunner

    from provisioning import card_ocr_cmd

    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """card group stand-in"""

    card_ocr_cmd.register(app)
    result = CliRunner().invoke(app, ["ocr-eval", "--frames", "4", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["frames"] == 4 and report["cards"] == 2
    assert report["two_frame"]["confident_wrong"] == 0
    assert set(report["field_accuracy"]) == {"birth", "expiry", "code"}
    assert "cpu_count" in report["machine"]
