"""Quality gates for a live frame: each failure is a :class:`Guidance` the screen turns into words.

Why gate at all: a small, turned, blurred or dark face gives a poor embedding and a false reject that
the patient cannot understand. Telling them what to change (近づいて, 正面を向いて, …) is faster than a
retry. The codes are stable names; ``ui/`` maps them to translated text (:data:`GUIDANCE_JA` is the
reference wording, not used by this layer).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.face.detector import Face


class Guidance(enum.Enum):
    """What the patient should do; ``OK`` means the frame is usable."""

    OK = "ok"
    NO_FACE = "no_face"
    ONE_PERSON = "one_person"
    MOVE_CLOSER = "move_closer"
    MOVE_BACK = "move_back"
    CENTRE_FACE = "centre_face"
    FACE_FORWARD = "face_forward"
    HOLD_STILL = "hold_still"
    MORE_LIGHT = "more_light"
    LESS_LIGHT = "less_light"


GUIDANCE_JA = {
    Guidance.OK: "そのままお待ちください",
    Guidance.NO_FACE: "カメラに顔を向けてください",
    Guidance.ONE_PERSON: "お一人で画面の前にお立ちください",
    Guidance.MOVE_CLOSER: "もう少し近づいてください",
    Guidance.MOVE_BACK: "少し離れてください",
    Guidance.CENTRE_FACE: "顔を枠の中に入れてください",
    Guidance.FACE_FORWARD: "正面を向いてください",
    Guidance.HOLD_STILL: "動かないでください",
    Guidance.MORE_LIGHT: "明るい場所でお願いします",
    Guidance.LESS_LIGHT: "まぶしすぎます。逆光を避けてください",
}


@dataclass(frozen=True)
class QualityLimits:
    """Limits of the gates. Sizes are fractions of the frame's shorter side; pose ratios of eye distance."""

    min_face_fraction: float = 0.16
    max_face_fraction: float = 0.80
    min_eye_distance_px: float = 24.0
    max_centre_offset: float = 0.30
    max_yaw_ratio: float = 0.22
    max_roll_deg: float = 15.0
    pitch_ratio_range: tuple[float, float] = (0.30, 0.72)
    min_sharpness: float = 40.0
    min_brightness: float = 55.0
    max_brightness: float = 210.0
    max_clipped_fraction: float = 0.20
    second_face_fraction: float = 0.6
    #: ONet's face probability below which a detection is not taken as a face (docs/face.md: genuine
    #: faces of the evaluation sets score >= 0.96, BlazeFace's false detections <= 0.05)
    min_landmark_score: float = 0.80
    #: detections (largest first) that get ONet and the gates before one is chosen
    max_candidates: int = 4


@dataclass(frozen=True)
class Quality:
    """Measured quality of one face; all pose numbers are ~0 for a frontal face."""

    face_fraction: float
    centre_offset: float
    yaw_ratio: float
    roll_deg: float
    pitch_ratio: float
    sharpness: float
    brightness: float
    clipped_fraction: float


def pose_from_landmarks(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw ratio, roll degrees, pitch ratio) from 5 landmarks (or 4 with the mouth centre).

    Yaw: horizontal offset of the nose from the eyes' midpoint, in eye distances, after removing roll.
    Pitch: vertical position of the nose between the eye line and the mouth (≈0.5 when frontal).
    """
    left, right, nose = points[0], points[1], points[2]
    mouth = points[3] if len(points) == 4 else (points[3] + points[4]) / 2
    eye_vec = right - left
    eye_dist = float(np.linalg.norm(eye_vec)) or 1e-6
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    cos, sin = eye_vec / eye_dist
    unroll = np.array([[cos, sin], [-sin, cos]], np.float32)
    mid = (left + right) / 2
    n = unroll @ (nose - mid)
    m = unroll @ (mouth - mid)
    yaw = float(n[0] / eye_dist)
    pitch = float(n[1] / m[1]) if m[1] > 1e-6 else 0.0
    return yaw, roll, pitch


def measure(frame_shape: tuple[int, ...], face: Face, aligned: np.ndarray) -> Quality:
    """Measure size, position, pose (from landmarks) and sharpness/exposure (on the aligned face)."""
    h, w = frame_shape[:2]
    points = face.landmarks5 if face.landmarks5 is not None else face.keypoints[:4]
    yaw, roll, pitch = pose_from_landmarks(points)
    x0, y0, x1, y1 = face.box
    centre = np.array([(x0 + x1) / 2 / w - 0.5, (y0 + y1) / 2 / h - 0.5])
    grey = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY)
    inner = grey[24:104, 24:88]  # eyes to chin, little background or hair
    sharpness = float(cv2.Laplacian(inner, cv2.CV_32F).var())
    return Quality(face_fraction=float(max(x1 - x0, y1 - y0) / min(h, w)),
                   centre_offset=float(np.max(np.abs(centre))),
                   yaw_ratio=yaw, roll_deg=roll, pitch_ratio=pitch, sharpness=sharpness,
                   brightness=float(inner.mean()),
                   clipped_fraction=float(np.mean((inner <= 8) | (inner >= 247))))


def guidance_for(quality: Quality, face: Face, limits: QualityLimits = QualityLimits()) -> Guidance:
    """The first failing gate, in the order a patient can act on it: distance, position, pose, light, motion."""
    if quality.face_fraction < limits.min_face_fraction or face.eye_distance < limits.min_eye_distance_px:
        return Guidance.MOVE_CLOSER
    if quality.face_fraction > limits.max_face_fraction:
        return Guidance.MOVE_BACK
    if quality.centre_offset > limits.max_centre_offset:
        return Guidance.CENTRE_FACE
    lo, hi = limits.pitch_ratio_range
    if (abs(quality.yaw_ratio) > limits.max_yaw_ratio or abs(quality.roll_deg) > limits.max_roll_deg
            or not lo <= quality.pitch_ratio <= hi):
        return Guidance.FACE_FORWARD
    if quality.brightness < limits.min_brightness:
        return Guidance.MORE_LIGHT
    if quality.brightness > limits.max_brightness or quality.clipped_fraction > limits.max_clipped_fraction:
        return Guidance.LESS_LIGHT
    if quality.sharpness < limits.min_sharpness:
        return Guidance.HOLD_STILL
    return Guidance.OK


def crowd_guidance(faces: list[Face], limits: QualityLimits = QualityLimits()) -> Guidance | None:
    """NO_FACE, ONE_PERSON (another face at least ``second_face_fraction`` of the chosen one's width —
    ``faces[0]`` is the chosen face), or None when fine."""
    if not faces:
        return Guidance.NO_FACE
    chosen = faces[0].width
    if any(f.width >= limits.second_face_fraction * chosen for f in faces[1:]):
        return Guidance.ONE_PERSON
    return None
