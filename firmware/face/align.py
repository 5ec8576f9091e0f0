"""Similarity alignment of a face to the 112×112 ArcFace template the embedding model expects.

Why a similarity transform (rotation, uniform scale, translation) and not a full affine: the embedding
model was trained on faces aligned this way; shearing a face to fit five points would distort identity.
LMEDS makes one bad point (e.g. a mouth corner under a mask edge) cost little.
"""

from __future__ import annotations

import cv2
import numpy as np

from firmware.errors import FaceError

ALIGNED_SIZE = 112
# ArcFace template, 112×112: image-left eye, image-right eye, nose tip, left and right mouth corner.
ARCFACE_5 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                      [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
# Same template with the mouth as one centre point: for detectors without mouth corners (BlazeFace).
ARCFACE_4 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                      [56.1396, 92.2848]], np.float32)


class AlignmentError(FaceError, ValueError):
    """The landmarks do not define a usable similarity transform (degenerate or too few points)."""


def similarity_matrix(points: np.ndarray) -> np.ndarray:
    """2×3 similarity transform taking the 4 or 5 landmarks onto the ArcFace template."""
    points = np.asarray(points, np.float32)
    template = {5: ARCFACE_5, 4: ARCFACE_4}.get(len(points))
    if template is None:
        raise AlignmentError(f"alignment needs 4 or 5 landmarks, got {len(points)}")
    matrix, _ = cv2.estimateAffinePartial2D(points, template, method=cv2.LMEDS)
    if matrix is None or not np.all(np.isfinite(matrix)):
        raise AlignmentError("landmarks are degenerate: no similarity transform to the template")
    return matrix


def align_face(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Warp ``rgb`` so that ``points`` land on the template; returns a new 112×112×3 uint8 array."""
    matrix = similarity_matrix(points)
    return cv2.warpAffine(rgb, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """A greyscale card photo as 3 identical channels, the layout the models take."""
    if grey.ndim == 3 and grey.shape[2] == 1:
        grey = grey[:, :, 0]
    if grey.ndim != 2:
        raise FaceError(f"card photo must be a 2-D greyscale array, got shape {grey.shape}")
    return np.repeat(grey[:, :, None], 3, axis=2)
