"""Load the shipped face models, refusing any file that is missing or differs from the manifest.

Why hash-check at load time: a model file is part of the security argument (the threshold was
calibrated for exactly these weights). A changed file would silently move false-accept rates, so the
loader stops with one clear :class:`~firmware.errors.ModelError` instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.errors import ModelError
from firmware.face.runtime import TfliteModel
from firmware.model_files import read_verified

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"

#: The FAR every embedding threshold in the manifest is calibrated for.
TARGET_FAR = 1e-4


def far_suffix(far: float = TARGET_FAR) -> str:
    """1e-4 -> "far_1e-4"."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"far_{mantissa}e{int(exponent)}"


def rule_threshold_key(fusion: str = "mean", frames: int = 5, far: float = TARGET_FAR) -> str:
    """The manifest key of the threshold calibrated for one decision rule.

    A threshold belongs to a rule, not to a model alone: the score the kiosk compares is the card
    against the *fused* good frames, whose impostor distribution differs from single frames'. So
    ``mean_of_5_far_1e-4`` is the threshold of "mean embedding of 5 good frames" (the kiosk's
    :class:`~firmware.face.session.FaceSession` default) and ``single_far_1e-4`` the one of one frame.
    """
    if frames <= 1:
        return f"single_{far_suffix(far)}"
    return f"{fusion}_of_{frames}_{far_suffix(far)}"


#: The threshold key of the kiosk's decision rule (FaceSession's defaults: mean of 5 good frames).
KIOSK_THRESHOLD_KEY = rule_threshold_key("mean", 5)


def models_dir() -> Path:
    """The models folder: ``$UKETSUKE_MODELS_DIR`` or the repository's ``models/``."""
    return Path(os.environ.get("UKETSUKE_MODELS_DIR", DEFAULT_MODELS_DIR))


@dataclass(frozen=True)
class ModelEntry:
    """One ``[models.<name>]`` table of the manifest."""

    name: str
    file: str
    role: str
    sha256: str
    thresholds: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


class Manifest:
    """``models/manifest.toml``: which file plays which role, its hash and calibrated thresholds."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory else models_dir()
        self.path = self.directory / "manifest.toml"
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"model manifest {self.path} is missing; restore models/ from the repository "
                             "or run python models/derive.py") from None
        except tomllib.TOMLDecodeError as exc:
            raise ModelError(f"model manifest {self.path} is not valid TOML: {exc}") from None
        self.roles: dict[str, str] = data.get("roles", {})
        self.entries: dict[str, ModelEntry] = {}
        for name, table in data.get("models", {}).items():
            try:
                self.entries[name] = ModelEntry(name=name, file=table["file"], role=table["role"],
                                                sha256=table["sha256"].lower(),
                                                thresholds=dict(table.get("thresholds", {})), raw=table)
            except KeyError as exc:
                raise ModelError(f"model manifest {self.path}: [models.{name}] lacks key {exc}") from None

    def entry_for(self, role: str) -> ModelEntry:
        """The entry the ``[roles]`` table names for ``role`` (e.g. "embedding")."""
        name = self.roles.get(role)
        if name is None or name not in self.entries:
            raise ModelError(f"model manifest {self.path}: no model for role {role!r} "
                             f"(roles: {sorted(self.roles)}, models: {sorted(self.entries)})")
        return self.entries[name]

    def read_verified(self, entry: ModelEntry) -> bytes:
        """Return the model file's bytes after checking its sha256 against the manifest."""
        return read_verified(self.directory / entry.file, entry.sha256, f"model {entry.name}: file",
                             "restore it with python models/derive.py, or add the new model to the "
                             "manifest and recalibrate")

    def load(self, role: str, **kwargs) -> tuple[TfliteModel, ModelEntry]:
        """Verify and load the model for ``role``."""
        entry = self.entry_for(role)
        return TfliteModel(self.read_verified(entry), entry.name, **kwargs), entry

    def threshold(self, role: str = "embedding", key: str = KIOSK_THRESHOLD_KEY) -> float:
        """A calibrated threshold (default: the kiosk's rule's); refuses an uncalibrated model or rule
        rather than guessing — a threshold calibrated for another rule would move the FAR."""
        entry = self.entry_for(role)
        value = entry.thresholds.get(key)
        if value is None or entry.thresholds.get("calibrated") in (None, "not yet"):
            raise ModelError(f"model {entry.name} has no calibrated threshold {key!r}: "
                             "run uketsuke face calibrate --far 1e-4 (it calibrates the kiosk's decision rule)")
        return float(value)


def write_thresholds(manifest_path: Path, model_name: str, values: dict[str, float | str]) -> None:
    """Set keys of ``[models.<name>.thresholds]`` in place, keeping every other line and comment.

    Why not a TOML writer: the stdlib has none and the manifest's comments are documentation.
    """
    text = Path(manifest_path).read_text(encoding="utf-8")
    header = f"[models.{model_name}.thresholds]"
    lines = text.splitlines()
    try:
        start = lines.index(header)
    except ValueError:
        # append a new table right after the model's own table block
        lines += ["", header]
        start = len(lines) - 1
    end = start + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    block = lines[start + 1:end]
    for key, value in values.items():
        rendered = f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value:.6f}"
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i, line in enumerate(block):
            if pattern.match(line):
                block[i] = rendered
                break
        else:
            while block and not block[-1].strip():
                block.pop()
            block.append(rendered)
    tail = lines[end:]
    new_lines = lines[:start + 1] + block + ([""] if tail else []) + tail
    Path(manifest_path).write_text("\n".join(new_lines).rstrip("\n") + "\n", encoding="utf-8")
    tomllib.loads(Path(manifest_path).read_text(encoding="utf-8"))  # never leave a broken manifest


def set_role(manifest_path: Path, role: str, model_name: str) -> None:
    """Point ``[roles] <role>`` at ``model_name`` in place (the rest of the file is kept)."""
    text = Path(manifest_path).read_text(encoding="utf-8")
    lines = text.splitlines()
    try:
        start = lines.index("[roles]")
    except ValueError:
        raise ModelError(f"model manifest {manifest_path} has no [roles] table") from None
    end = start + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    pattern = re.compile(rf"^\s*{re.escape(role)}\s*=")
    for i in range(start + 1, end):
        if pattern.match(lines[i]):
            lines[i] = f'{role} = "{model_name}"'
            break
    else:
        lines.insert(end if end == len(lines) else end - 1, f'{role} = "{model_name}"')
    Path(manifest_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    tomllib.loads(Path(manifest_path).read_text(encoding="utf-8"))


def add_embedding_model(directory: Path, source: Path, name: str, *, input_mean: float, input_scale: float,
                        channel_order: str, licence: str, provenance: str) -> ModelEntry:
    """Copy a clinic-supplied embedding model into ``directory`` and append its manifest entry.

    The entry starts uncalibrated: the kiosk refuses to verify with it until ``uketsuke face calibrate``
    has written a threshold.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ModelError(f"model name must be letters, digits and _ only, not {name!r}")
    manifest = Manifest(directory)
    if name in manifest.entries:
        raise ModelError(f"model manifest already has an entry {name!r}; choose another name")
    data = Path(source).read_bytes()
    target = Path(directory) / Path(source).name
    if target.exists() and target.read_bytes() != data:
        raise ModelError(f"{target} exists with other content; rename the new model file")
    TfliteModel(data, name)  # must load before it is accepted
    target.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    def q(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    table = f"""
[models.{name}]
file = "{target.name}"
role = "embedding"
sha256 = "{digest}"
licence = "{q(licence)}"
provenance = "{q(provenance)}"
input_mean = {input_mean}
input_scale = {input_scale}
channel_order = "{channel_order}"

[models.{name}.thresholds]
calibrated = "not yet"
"""
    with open(manifest.path, "a", encoding="utf-8") as fh:
        fh.write(table)
    return Manifest(directory).entries[name]
