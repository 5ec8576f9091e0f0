"""Face embeddings (unit vectors) and their comparison, independent of which model produced them.

Why unit vectors and cosine: every shipped or clinic-supplied model is compared the same way, so the
only model-specific number is the calibrated threshold in the manifest.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from firmware.errors import ModelError
from firmware.face.runtime import TfliteModel

log = logging.getLogger(__name__)


class Embedder:
    """Runs an embedding model on aligned 112×112 RGB faces; normalisation comes from the manifest.

    The shipped MobileFaceNet has a fixed batch of 2 (two faces per call): faces are packed in pairs
    and an odd last face is padded with zeros, which costs nothing extra.
    """

    def __init__(self, model: TfliteModel, *, mean: float = 127.5, scale: float = 1 / 128.0,
                 channel_order: str = "RGB"):
        self.model = model
        shape = model.input_shape
        if len(shape) != 4 or shape[3] != 3:
            raise ModelError(f"embedding model {model.name} must take NHWC RGB input, has {shape}")
        self.batch, self.height, self.width = shape[0], shape[1], shape[2]
        if channel_order not in ("RGB", "BGR"):
            raise ModelError(f"embedding model {model.name}: channel_order must be RGB or BGR, not {channel_order!r}")
        self.mean, self.scale, self.bgr = mean, scale, channel_order == "BGR"

    def embed(self, faces: list[np.ndarray]) -> np.ndarray:
        """``(n, dim)`` unit embeddings of ``n`` aligned faces (uint8, 112×112×3)."""
        if not faces:
            return np.zeros((0, 0), np.float32)
        out = []
        for start in range(0, len(faces), self.batch):
            chunk = faces[start:start + self.batch]
            tensor = np.zeros((self.batch, self.height, self.width, 3), np.float32)
            for i, face in enumerate(chunk):
                if face.ndim != 3 or face.shape[2] != 3:
                    raise ModelError(f"embedding model {self.model.name} takes HxWx3 faces, got {face.shape}")
                if face.shape[:2] != (self.height, self.width):
                    # a clinic model with another input size gets the same template, rescaled
                    face = cv2.resize(face, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                pixels = face[:, :, ::-1] if self.bgr else face
                tensor[i] = (pixels.astype(np.float32) - self.mean) * self.scale
            result = next(iter(self.model.run(tensor).values()))
            out.append(result[:len(chunk)])
            tensor.fill(0.0)
        return normalise(np.concatenate(out).astype(np.float32))


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-10)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings in [-1, 1]."""
    return float(np.dot(normalise(a), normalise(b)))


def fuse_mean(embeddings: np.ndarray) -> np.ndarray:
    """Mean embedding of several frames, renormalised: averages out pose and expression noise."""
    return normalise(np.mean(normalise(embeddings), axis=0))


def score_best_of(reference: np.ndarray, embeddings: np.ndarray) -> float:
    """Best single-frame cosine score against ``reference``."""
    return float(np.max(normalise(embeddings) @ normalise(reference)))


def score_mean(reference: np.ndarray, embeddings: np.ndarray) -> float:
    """Cosine score of the mean embedding against ``reference``."""
    return cosine(reference, fuse_mean(embeddings))


FUSIONS = {"mean": score_mean, "best": score_best_of}
