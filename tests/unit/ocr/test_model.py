"""The OCR model loader refuses changed or missing files; restricted decoding and aliases."""

import shutil

import numpy as np
import pytest

from firmware.card.ocr.model import FieldRead, Recognizer, load_recognizer
from firmware.errors import ModelError

from .conftest import MODELS_OCR


@pytest.fixture
def model_copy(tmp_path):
    target = tmp_path / "ocr"
    target.mkdir()
    for name in ("manifest.toml", "ppocrv6_small_rec.onnx", "ppocrv6_dict.txt"):
        shutil.copy(MODELS_OCR / name, target / name)
    return target


def test_loader_refuses_a_changed_model(model_copy):
    path = model_copy / "ppocrv6_small_rec.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256.*changed"):
        load_recognizer(model_copy)


def test_loader_refuses_a_changed_dictionary(model_copy):
    path = model_copy / "ppocrv6_dict.txt"
    path.write_bytes(path.read_bytes().replace("令".encode(), "合".encode(), 1))
    with pytest.raises(ModelError, match="dictionary"):
        load_recognizer(model_copy)


def test_loader_refuses_missing_files(model_copy):
    (model_copy / "ppocrv6_small_rec.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_recognizer(model_copy)
    (model_copy / "manifest.toml").unlink()
    with pytest.raises(ModelError, match="manifest"):
        load_recognizer(model_copy)


class _NoSession:
    def get_inputs(self):
        class _Input:
            name = "x"
        return [_Input()]


def _recognizer() -> Recognizer:
    return Recognizer(_NoSession(), ["0", "1", "2", "合", "令", "和", "\uff12", "A"])


def _probs(rec: Recognizer, steps: list[dict[str, float]]) -> np.ndarray:
    out = np.zeros((len(steps), len(rec.classes)), np.float32)
    for t, step in enumerate(steps):
        for ch, p in step.items():
            out[t, 0 if ch == "-" else rec.index[ch]] = p
    return out


def test_restricted_decoding_collapses_repeats_and_keeps_best_probability():
    rec = _recognizer()
    probs = _probs(rec, [{"1": 0.6, "-": 0.4}, {"1": 0.95}, {"-": 0.9}, {"1": 0.97}, {"2": 0.5, "A": 0.5}])
    read = rec.decode(probs, "012")
    assert isinstance(read, FieldRead)
    assert read.text == "112"
    assert [round(c.prob, 2) for c in read.chars] == [0.95, 0.97, 0.5]  # A is not allowed, 2 stays at 0.5
    assert "112" not in repr(read)


def test_aliases_merge_ling_misread_and_full_width_digits():
    rec = _recognizer()
    probs = _probs(rec, [{"合": 0.8, "令": 0.15}, {"-": 1.0}, {"和": 0.99}, {"\uff12": 0.6, "2": 0.35}])
    read = rec.decode(probs, "令和2")
    assert read.text == "令和2"
    assert read.chars[0].prob == pytest.approx(0.95)
    assert read.chars[2].prob == pytest.approx(0.95)


def test_characters_outside_the_dictionary_are_refused():
    with pytest.raises(ModelError, match="cannot read"):
        _recognizer().decode(np.zeros((1, 10), np.float32), "Z")
