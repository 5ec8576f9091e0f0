"""The passive liveness model is chosen by the manifest: role, entry, threshold, and how to feed it."""

from __future__ import annotations

import shutil

import pytest

from firmware.errors import ModelError
from firmware.face.liveness import PassiveLiveness
from firmware.face.models import Manifest, models_dir, set_role, write_thresholds


@pytest.fixture
def models_copy(tmp_path):
    """A models folder whose manifest the test may edit (model files are symlinked, not copied)."""
    source = models_dir()
    for path in source.iterdir():
        if path.suffix == ".tflite":
            (tmp_path / path.name).symlink_to(path)
    shutil.copy(source / "manifest.toml", tmp_path / "manifest.toml")
    return tmp_path


@pytest.mark.parametrize("entry, size", [("antispoofing", 256), ("fr_liveness", 128)])
def test_the_liveness_role_selects_the_model(models_copy, entry, size):
    set_role(models_copy / "manifest.toml", "liveness", entry)
    passive = PassiveLiveness.from_manifest(Manifest(models_copy))
    assert passive.name == entry and passive.input_size == size
    thresholds = Manifest(models_copy).entries[entry].thresholds
    assert passive.threshold == pytest.approx(thresholds["spoof_score"])


def test_an_uncalibrated_liveness_model_is_refused(models_copy):
    write_thresholds(models_copy / "manifest.toml", "fr_liveness", {"calibrated": "not yet"})
    with pytest.raises(ModelError, match="fr_liveness has no calibrated spoof_score"):
        PassiveLiveness.from_manifest(Manifest(models_copy), entry="fr_liveness")
    # evaluation may still run it at an explicit threshold
    assert PassiveLiveness.from_manifest(Manifest(models_copy), entry="fr_liveness", threshold=0.3).threshold == 0.3
