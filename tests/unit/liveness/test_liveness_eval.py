"""`uketsuke face liveness-eval` on a tiny data set it can make itself (the astronaut portrait from
scikit-image, as ``<id>/neutral.jpg``): the numbers' bookkeeping, the schedule it evaluates, the JSON
record, and the clear message when the evaluation data are absent."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from firmware.face.liveness import LivenessChecker, PassiveLiveness
from firmware.face.pipeline import FacePipeline
from provisioning import face_liveness_eval as ev

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test portrait")


@pytest.fixture(scope="module")
def portraits(tmp_path_factory):
    root = tmp_path_factory.mktemp("portraits")
    (root / "p01").mkdir()
    rgb = np.ascontiguousarray(skimage_data.astronaut())
    assert cv2.imwrite(str(root / "p01" / "neutral.jpg"), rgb[:, :, ::-1])
    return root


def test_evaluate_runs_the_kiosk_schedule_and_records_every_score(portraits):
    pipeline = FacePipeline()
    passive = PassiveLiveness.from_manifest()
    sources = ev.load_sources(portraits)
    tallies = ev.evaluate(pipeline, LivenessChecker(passive), sources, attacks=("still_print",))
    assert set(tallies) == {"bona_fide", "still_print"}
    bona, attack = tallies["bona_fide"].outcomes[0], tallies["still_print"].outcomes[0]
    assert bona.challenge_passed  # the simulated person does what is asked
    assert not attack.challenge_passed  # a still print cannot blink or turn
    for outcome in (bona, attack):
        assert 1 <= len(outcome.passive_scores) <= 3  # the kiosk's budget
        assert outcome.passive_score == pytest.approx(float(np.median(outcome.passive_scores)))
    report = ev.report(tallies, passive.threshold)
    row = report["operating"]["rows"]["still_print"]
    assert row["errors"] == 0 and row["n"] == 1
    assert report["operating"]["worst_apcer"]["type"] == "still_print"


def test_the_command_writes_its_schedule_and_scores(portraits, tmp_path):
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "provisioning.cli", "face", "liveness-eval", "--data",
                           str(portraits), "--passive-every", "2", "--passive-max", "4", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(out.read_text())
    assert payload["passive_schedule"] == {"every": 2, "max": 4}
    outcomes = [o for rows in payload["outcomes"].values() for o in rows]
    assert len(outcomes) == 1 + len(ev.ATTACK_TYPES)
    assert all(len(o["passive_scores"]) <= 4 for o in outcomes)
    assert any(len(o["passive_scores"]) > 3 for o in outcomes)  # the kiosk's 3 would not allow this


def test_absent_data_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "provisioning.cli", "face", "liveness-eval", "--data",
                           str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "evaluation-only data" in proc.stderr
    assert "Traceback" not in proc.stderr
