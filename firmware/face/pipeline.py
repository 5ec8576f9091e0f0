"""The face pipeline: detect → landmarks → quality gates → align → embed, one object holding the models.

Why one object: the kiosk loads the models once at start (hash-checked, ~12 MB) and every session reuses
them; evaluation and benchmark drive exactly the same code as the kiosk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.errors import FaceError
from firmware.face.align import align_face, grey_to_rgb
from firmware.face.detector import BlazeFaceDetector, Face, OnetLandmarks
from firmware.face.embedder import Embedder
from firmware.face.models import Manifest
from firmware.face.quality import Guidance, Quality, QualityLimits, crowd_guidance, guidance_for, measure

log = logging.getLogger(__name__)


class NoFaceFound(FaceError, ValueError):
    """No face was found where one was required (the card photo, an evaluation image)."""


@dataclass
class FrameAnalysis:
    """What the pipeline saw in one frame. ``aligned`` is set whenever a face was found."""

    guidance: Guidance
    face: Face | None = None
    aligned: np.ndarray | None = None
    quality: Quality | None = None


def check_image(image: np.ndarray, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise FaceError(f"{what} must be a uint8 numpy array, got {type(image).__name__} "
                        f"{getattr(image, 'dtype', '')}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 16:
        raise FaceError(f"{what} must be an (H, W, 3) RGB array of at least 16x16, got {image.shape}")


class FacePipeline:
    """Loads the manifest's models once and runs them on frames and card photos."""

    def __init__(self, manifest: Manifest | None = None, *, detector_role: str = "detector",
                 use_landmark_refiner: bool = True, limits: QualityLimits | None = None,
                 num_threads: int | None = None):
        self.manifest = manifest or Manifest()
        self.detector = BlazeFaceDetector(self.manifest.load(detector_role, num_threads=num_threads)[0])
        self.refiner = (OnetLandmarks(self.manifest.load("landmarks", num_threads=num_threads)[0])
                        if use_landmark_refiner else None)
        embed_model, self.embedding_entry = self.manifest.load("embedding", num_threads=num_threads)
        raw = self.embedding_entry.raw
        self.embedder = Embedder(embed_model, mean=float(raw.get("input_mean", 127.5)),
                                 scale=float(raw.get("input_scale", 1 / 128.0)),
                                 channel_order=str(raw.get("channel_order", "RGB")))
        self.limits = limits or QualityLimits()

    def find_faces(self, rgb: np.ndarray) -> list[Face]:
        """Faces largest first; the largest gets ONet landmarks."""
        faces = sorted(self.detector.detect(rgb), key=lambda f: f.width, reverse=True)
        if faces and self.refiner is not None:
            faces[0] = self.refiner.refine(rgb, faces[0])
        return faces

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        points = face.landmarks5 if face.landmarks5 is not None else face.keypoints[:4]
        return align_face(rgb, points)

    def analyse_frame(self, rgb: np.ndarray) -> FrameAnalysis:
        """Detect, gate and align one live frame (no embedding yet: only good frames are embedded)."""
        check_image(rgb, "camera frame")
        faces = self.find_faces(rgb)
        crowd = crowd_guidance(faces, self.limits)
        if crowd is Guidance.NO_FACE:
            return FrameAnalysis(Guidance.NO_FACE)
        face = faces[0]
        aligned = self.align(rgb, face)
        quality = measure(rgb.shape, face, aligned)
        guidance = crowd or guidance_for(quality, face, self.limits)
        return FrameAnalysis(guidance, face, aligned, quality)

    def embed_aligned(self, aligned: list[np.ndarray]) -> np.ndarray:
        return self.embedder.embed(aligned)

    def face_embedding(self, rgb: np.ndarray, what: str = "image") -> tuple[np.ndarray, np.ndarray]:
        """(embedding, aligned face) of the largest face, no quality gates; raises NoFaceFound."""
        check_image(rgb, what)
        faces = self.find_faces(rgb)
        if not faces:
            raise NoFaceFound(f"no face found in the {what} ({rgb.shape[1]}x{rgb.shape[0]})")
        aligned = self.align(rgb, faces[0])
        return self.embedder.embed([aligned])[0], aligned

    def card_embedding(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embedding of the card's greyscale photo, through the same detect/align as live frames.

        Card photos are small (face ~60–100 px): they are upscaled ×2 first so that the detector and
        ONet see a face of the size they work best at. The upscaled copy is zeroed before returning.
        """
        if not isinstance(grey, np.ndarray) or grey.dtype != np.uint8:
            raise FaceError("card photo must be a uint8 numpy array")
        rgb = grey_to_rgb(grey)
        try:
            if max(rgb.shape[:2]) < 320:
                big = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
                rgb.fill(0)
                rgb = big
            return self.face_embedding(rgb, "card photo")
        finally:
            rgb.fill(0)
