"""The loader refuses a changed or missing model with one clear message; thresholds are written in place."""

import shutil
import tomllib

import pytest

from firmware.errors import ModelError
from firmware.face.models import DEFAULT_MODELS_DIR, Manifest, write_thresholds


@pytest.fixture
def models_copy(tmp_path):
    """A copy of the manifest with the small ONet model beside it (no need to copy 12 MB)."""
    shutil.copy(DEFAULT_MODELS_DIR / "manifest.toml", tmp_path / "manifest.toml")
    shutil.copy(DEFAULT_MODELS_DIR / "onet.tflite", tmp_path / "onet.tflite")
    return tmp_path


def test_every_shipped_model_matches_its_hash():
    manifest = Manifest()
    for role in ("detector", "detector_far", "landmarks", "embedding", "liveness"):
        manifest.entry_for(role)
    for name, entry in manifest.entries.items():
        assert len(manifest.read_verified(entry)) > 100_000, name


def test_changed_model_is_refused(models_copy):
    path = models_copy / "onet.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model onet: .* sha256 .* refusing a changed model"):
        Manifest(models_copy).load("landmarks")


def test_missing_model_is_refused(models_copy):
    with pytest.raises(ModelError, match=r"model mobilefacenet: file .*MobileFaceNet.tflite is missing"):
        Manifest(models_copy).load("embedding")


def test_missing_manifest_is_refused(tmp_path):
    with pytest.raises(ModelError, match="manifest .* is missing"):
        Manifest(tmp_path)


def test_unknown_role_is_refused(models_copy):
    with pytest.raises(ModelError, match="no model for role 'voice'"):
        Manifest(models_copy).entry_for("voice")


def test_write_thresholds_keeps_comments_and_round_trips(models_copy):
    path = models_copy / "manifest.toml"
    before = path.read_text()
    write_thresholds(path, "mobilefacenet", {"mean_of_5_far_1e-4": 0.512345, "calibrated": "test run"})
    write_thresholds(path, "mobilefacenet", {"far_1e-3": 0.45})
    after = path.read_text()
    assert after.splitlines()[0] == before.splitlines()[0]  # header comment survives
    data = tomllib.loads(after)
    thresholds = data["models"]["mobilefacenet"]["thresholds"]
    assert thresholds["mean_of_5_far_1e-4"] == pytest.approx(0.512345)
    assert thresholds["far_1e-3"] == pytest.approx(0.45)
    assert data["models"]["antispoofing"]["thresholds"]["spoof_score"] == pytest.approx(0.2)
    assert Manifest(models_copy).threshold("embedding", "mean_of_5_far_1e-4") == pytest.approx(0.512345)


def test_uncalibrated_threshold_is_refused(models_copy):
    path = models_copy / "manifest.toml"
    write_thresholds(path, "mobilefacenet", {"calibrated": "not yet"})
    with pytest.raises(ModelError, match="no calibrated threshold"):
        Manifest(models_copy).threshold("embedding")
