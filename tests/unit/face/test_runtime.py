"""The interpreter shim: litert first, fallback second, one clear error when neither imports."""

import numpy as np
import pytest

from firmware.errors import ModelError
from firmware.face import runtime
from firmware.face.models import Manifest


def test_prefers_ai_edge_litert():
    cls, name = runtime.load_interpreter_class()
    assert name == "ai-edge-litert"
    assert cls.__name__ == "Interpreter"


def test_falls_back_when_first_runtime_is_missing():
    cls, name = runtime.load_interpreter_class(
        [("no_such_tflite_module.interpreter", "missing-runtime"), ("ai_edge_litert.interpreter", "fallback")])
    assert name == "fallback"


def test_neither_runtime_gives_one_clear_error():
    with pytest.raises(ModelError, match="no TFLite runtime installed.*pip install ai-edge-litert"):
        runtime.load_interpreter_class([("nope_a.interpreter", "ai-edge-litert"),
                                        ("nope_b.interpreter", "tflite-runtime")])


def test_model_runs_through_the_shim_and_checks_shapes():
    manifest = Manifest()
    model, entry = manifest.load("landmarks")
    assert model.input_shape == (1, 48, 48, 3)
    out = model.run(np.zeros((1, 48, 48, 3), np.float32))
    assert set(out) == {"onet/prob1", "onet/conv6-2/conv6-2", "onet/conv6-3/conv6-3"}
    assert out["onet/prob1"].shape == (1, 2)
    with pytest.raises(ModelError, match="must have shape"):
        model.run(np.zeros((1, 24, 24, 3), np.float32))


def test_garbage_model_bytes_are_a_model_error():
    with pytest.raises(ModelError, match="cannot be loaded"):
        runtime.TfliteModel(b"not a flatbuffer" * 10, "garbage")
