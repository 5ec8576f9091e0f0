"""A clinic drops in another embedding model: it is hashed into the manifest and refused until calibrated."""

import shutil

import pytest
from typer.testing import CliRunner

from firmware.errors import ModelError
from firmware.face.models import DEFAULT_MODELS_DIR, Manifest, write_thresholds
from firmware.face.pipeline import FacePipeline
from provisioning.face_cmd import app


@pytest.fixture
def models_copy(tmp_path):
    directory = tmp_path / "models"
    directory.mkdir()
    for name in ("manifest.toml", "face_detection_short_range.tflite", "onet.tflite", "MobileFaceNet.tflite"):
        shutil.copy(DEFAULT_MODELS_DIR / name, directory / name)
    shutil.copy(DEFAULT_MODELS_DIR / "MobileFaceNet.tflite", tmp_path / "clinic_net.tflite")
    return directory


def test_add_model_then_calibrate(models_copy):
    result = CliRunner().invoke(app, ["add-model", str(models_copy.parent / "clinic_net.tflite"), "--name",
                                      "clinic", "--channel-order", "RGB", "--licence", "licensed to clinic X",
                                      "--use", "--models-dir", str(models_copy)])
    assert result.exit_code == 0, result.output
    manifest = Manifest(models_copy)
    entry = manifest.entry_for("embedding")
    assert entry.name == "clinic" and entry.raw["licence"] == "licensed to clinic X"
    pipeline = FacePipeline(manifest)  # loads, hash-checked
    assert pipeline.embedding_entry.name == "clinic"
    with pytest.raises(ModelError, match="no calibrated threshold"):
        manifest.threshold("embedding")
    write_thresholds(manifest.path, "clinic", {"mean_of_5_far_1e-4": 0.4, "calibrated": "test"})
    assert Manifest(models_copy).threshold("embedding") == pytest.approx(0.4)
    assert Manifest(models_copy).entries["mobilefacenet"].thresholds["mean_of_5_far_1e-4"] > 0.3  # old one untouched


def test_a_file_that_is_no_model_is_refused(models_copy, tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 1000)
    result = CliRunner().invoke(app, ["add-model", str(junk), "--name", "junk", "--models-dir", str(models_copy)])
    assert isinstance(result.exception, ModelError)
    assert "junk" not in Manifest(models_copy).entries


def test_use_model_switches_only_to_a_calibrated_embedding_model(models_copy):
    runner = CliRunner()
    add = runner.invoke(app, ["add-model", str(models_copy.parent / "clinic_net.tflite"), "--name", "clinic",
                              "--models-dir", str(models_copy)])
    assert add.exit_code == 0, add.output
    assert Manifest(models_copy).entry_for("embedding").name == "mobilefacenet"  # no --use
    refused = runner.invoke(app, ["use-model", "clinic", "--models-dir", str(models_copy)])
    assert isinstance(refused.exception, ModelError) and "calibrate" in str(refused.exception)
    wrong_role = runner.invoke(app, ["use-model", "onet", "--models-dir", str(models_copy)])
    assert isinstance(wrong_role.exception, ModelError)
    write_thresholds(models_copy / "manifest.toml", "clinic", {"mean_of_5_far_1e-4": 0.41, "calibrated": "test"})
    ok = runner.invoke(app, ["use-model", "clinic", "--models-dir", str(models_copy)])
    assert ok.exit_code == 0, ok.output
    assert Manifest(models_copy).entry_for("embedding").name == "clinic"
