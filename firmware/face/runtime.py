"""The one place that imports a TFLite interpreter: ai-edge-litert first, tflite-runtime as fallback.

Why a shim: ai-edge-litert has wheels for numpy 2 and Python 3.11–3.13 (x86_64 and aarch64), while
tflite-runtime 2.14 is what older Raspberry Pi images carry (numpy < 2, no cp313). Both expose the same
``Interpreter`` class; the pipeline only ever sees :class:`TfliteModel`, so it never imports either.
Imports are lazy so that importing ``firmware.face`` costs nothing until a model is loaded.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from firmware.errors import ModelError

log = logging.getLogger(__name__)

# (module, human name) in order of preference.
RUNTIMES: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


def load_interpreter_class(preferred: Sequence[tuple[str, str]] = RUNTIMES) -> tuple[type, str]:
    """Return ``(Interpreter class, runtime name)`` of the first runtime that imports.

    Raises:
        ModelError: neither runtime is installed; the message says how to install one.
    """
    tried = []
    for module_name, human in preferred:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            tried.append(f"{human} ({exc})")
            continue
        return module.Interpreter, human
    raise ModelError(
        "no TFLite runtime installed: tried " + "; ".join(tried)
        + ". Install one: pip install ai-edge-litert==2.3.0 (preferred) or tflite-runtime==2.14.0"
    )


def default_threads() -> int:
    """Two threads: the Pi has four cores and the UI and camera need the others."""
    return int(os.environ.get("UKETSUKE_TFLITE_THREADS", "2"))


class TfliteModel:
    """A loaded TFLite model with named inputs/outputs: ``run(x) -> {output name: array}``.

    The same API whatever runtime is underneath, so the pipeline code never changes with it.
    """

    def __init__(self, model_bytes: bytes, name: str, *, num_threads: int | None = None,
                 runtimes: Sequence[tuple[str, str]] = RUNTIMES):
        interpreter_class, self.runtime = load_interpreter_class(runtimes)
        self.name = name
        try:
            self._interpreter = interpreter_class(
                model_content=model_bytes, num_threads=num_threads or default_threads())
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"model {name} cannot be loaded by {self.runtime}: {exc}") from exc
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()
        log.debug("loaded %s with %s", name, self.runtime)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self._inputs[0]["shape"])

    @property
    def output_names(self) -> list[str]:
        return [d["name"] for d in self._outputs]

    def run(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run one inference; inputs in the model's order, already shaped and typed."""
        if len(inputs) != len(self._inputs):
            raise ModelError(f"model {self.name} takes {len(self._inputs)} inputs, got {len(inputs)}")
        for detail, value in zip(self._inputs, inputs, strict=True):
            expected = tuple(int(v) for v in detail["shape"])
            if tuple(value.shape) != expected:
                raise ModelError(f"model {self.name}: input {detail['name']} must have shape "
                                 f"{expected}, not {tuple(value.shape)}")
            self._interpreter.set_tensor(detail["index"], np.ascontiguousarray(value, dtype=detail["dtype"]))
        self._interpreter.invoke()
        return {d["name"]: self._interpreter.get_tensor(d["index"]).copy() for d in self._outputs}


def load_model_file(path: Path, name: str | None = None, **kwargs) -> TfliteModel:
    """Load a model from a file (no hash check: use :mod:`firmware.face.models` for shipped models)."""
    return TfliteModel(Path(path).read_bytes(), name or Path(path).name, **kwargs)
