"""The face pipeline: detect → landmarks → quality gates → align → embed, one object holding the models.

Why one object: the kiosk loads the models once at start (hash-checked, ~12 MB) and every session reuses
them; evaluation and benchmark drive exactly the same code as the kiosk.

Which face: not simply the largest detection. Every detection (up to ``QualityLimits.max_candidates``,
largest first) gets ONet's landmarks *and its face probability*; a detection ONet scores below
``QualityLimits.min_landmark_score`` is not a face (a pattern, a hand, a poster corner) and is dropped.
Of the rest, the chosen face is the one that passes the quality gates, then the one nearest the frame's
centre, then the largest — the person standing in front of the kiosk, not a larger face at the edge. A
second plausible face at least ``second_face_fraction`` of the chosen one's width, or one nearer the
centre than the chosen one (a person in front who fails a gate while a face at the edge passes), makes
the frame ``ONE_PERSON``: only a smaller face farther out (the background) is ignored. ``face_choice="largest"`` keeps the earlier rule (largest detection, ONet score
unused) for before/after evaluation only.
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


FACE_CHOICES = ("gates", "largest")


@dataclass
class Candidate:
    """One detection as the face choice saw it: refined face, its aligned crop, quality and verdict."""

    face: Face
    aligned: np.ndarray | None = None
    quality: Quality | None = None
    guidance: Guidance | None = None


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
                 num_threads: int | None = None, face_choice: str = "gates"):
        if face_choice not in FACE_CHOICES:
            raise FaceError(f"face_choice must be one of {FACE_CHOICES}, not {face_choice!r}")
        self.face_choice = face_choice
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
        """Plausible faces, the chosen one first (see the module docstring), each with ONet landmarks."""
        candidates = self.candidates(rgb)
        for c in candidates:
            if c.aligned is not None:
                c.aligned.fill(0)
        return [c.face for c in candidates]

    def candidates(self, rgb: np.ndarray) -> list[Candidate]:
        """Detections that ONet accepts as faces, the chosen one first, with crops, quality and verdict.

        The caller owns the aligned crops (and zeroes those it does not keep).
        """
        detections = sorted(self.detector.detect(rgb), key=lambda f: f.width, reverse=True)
        if not detections:
            return []
        if self.face_choice == "largest":  # the earlier rule, for before/after evaluation
            first = self.refiner.refine(rgb, detections[0]) if self.refiner is not None else detections[0]
            return [self._gated(rgb, first)] + [Candidate(f) for f in detections[1:]]
        candidates = []
        for face in detections[:self.limits.max_candidates]:
            if self.refiner is not None:
                face = self.refiner.refine(rgb, face)
                if face.landmark_score < self.limits.min_landmark_score:
                    log.debug("detection refused: ONet face probability %.3f < %.2f", face.landmark_score,
                              self.limits.min_landmark_score)
                    continue
            candidates.append(self._gated(rgb, face))
        # passes the gates, then nearest the centre, then the largest
        candidates.sort(key=lambda c: (c.guidance is not Guidance.OK, round(c.quality.centre_offset, 2),
                                       -c.face.width))
        return candidates

    def _gated(self, rgb: np.ndarray, face: Face) -> Candidate:
        aligned = self.align(rgb, face)
        quality = measure(rgb.shape, face, aligned)
        return Candidate(face, aligned, quality, guidance_for(quality, face, self.limits))

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        points = face.landmarks5 if face.landmarks5 is not None else face.keypoints[:4]
        return align_face(rgb, points)

    def analyse_frame(self, rgb: np.ndarray) -> FrameAnalysis:
        """Detect, gate and align one live frame (no embedding yet: only good frames are embedded)."""
        check_image(rgb, "camera frame")
        candidates = self.candidates(rgb)
        crowd = crowd_guidance([c.face for c in candidates], self.limits)
        for other in candidates[1:]:
            if other.aligned is not None:
                other.aligned.fill(0)
        if crowd is Guidance.NO_FACE:
            return FrameAnalysis(Guidance.NO_FACE)
        chosen = candidates[0]
        if crowd is None and any(o.quality is not None and o.quality.centre_offset < chosen.quality.centre_offset
                                 - 0.05 for o in candidates[1:]):
            crowd = Guidance.ONE_PERSON  # a face nearer the centre was passed over (too far, turned…)
        return FrameAnalysis(crowd or chosen.guidance, chosen.face, chosen.aligned, chosen.quality)

    def embed_aligned(self, aligned: list[np.ndarray]) -> np.ndarray:
        return self.embedder.embed(aligned)

    def face_embedding(self, rgb: np.ndarray, what: str = "image") -> tuple[np.ndarray, np.ndarray]:
        """(embedding, aligned face) of the chosen face (gates rank the faces, none refuses); raises
        NoFaceFound."""
        check_image(rgb, what)
        candidates = self.candidates(rgb)
        for other in candidates[1:]:
            if other.aligned is not None:
                other.aligned.fill(0)
        if not candidates:
            raise NoFaceFound(f"no face found in the {what} ({rgb.shape[1]}x{rgb.shape[0]})")
        aligned = candidates[0].aligned
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
