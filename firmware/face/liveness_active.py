"""The active half of liveness: a random challenge (blink, or a head turn left/right) checked over frames.

Why these measures:

* **Head turn** — a real head is a 3-D object: when it turns, the nose tip (in front of the eyes) moves
  sideways relative to the eyes' midpoint, by ``depth * sin(yaw)``. A photo, however it is tilted or
  moved, is planar: every point, nose included, moves with the same projective map, so the nose stays on
  the eyes' midline (its offset ratio is kept by any rotation of the plane about an axis through it, and
  changes only slightly under perspective). :func:`estimate_yaw_deg` turns the offset (in eye distances)
  into degrees with a generic head model (nose tip ~0.45 eye distances in front of the eyes; adult
  anthropometry: interpupillary ~63 mm, pupils ~25–30 mm behind the nose tip). The absolute angle is
  only as good as that constant; the challenge thresholds keep a wide margin.
* **Blink** — BlazeFace's and ONet's points have no eyelids. :func:`eye_openness` looks for the iris
  between the whites of the eye: in a patch at each eye (similarity-normalised to 64 px between the
  eyes) it takes, at each point, the darker of the two points 0.14 eye distances to its left and right
  minus the point itself. An open eye answers strongly (dark iris, white sclera on both sides); a closed
  lid does not, because skin is flat and the lash line, lid edge and creases run horizontally. The
  measure is relative: a blink is a dip below ``closed_ratio`` of the person's own open-eye baseline
  and back, within a blink's duration, while the face stays put (so moving or bending a photo does not
  count). Measured on real open eyes and simulated closed lids only (docs/face-liveness.md).

Everything here works on landmarks and small grey patches; the patches are zeroed after use.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: Nose-tip depth in front of the eyes, in eye distances (generic adult head; see module docstring).
NOSE_DEPTH_RATIO = 0.45

# Canonical eye band: both eyes on one row, EYE_BAND_IOD_PX apart.
EYE_BAND_IOD_PX = 64
EYE_BAND_SIZE = (128, 56)  # width, height
EYE_BAND_EYES = np.array([[32.0, 18.0], [96.0, 18.0]], np.float32)
_EYE_HALF_W, _EYE_HALF_H = 10, 8          # ±0.16 × ±0.125 eye distances: where the iris can be
_IRIS_SIGMA_PX = 2.0                      # ≈0.03 eye distances: smooths noise, keeps a 12 px iris
_SCLERA_OFFSET_PX = 9                     # ≈0.14 eye distances: just past the iris's edge, on the sclera


class ChallengeKind(enum.Enum):
    """What the person is asked to do. Turn directions are the person's own left and right."""

    BLINK = "blink"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"


def eye_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye, image-right eye) from 4, 5 (ONet/ArcFace order) or 6 (BlazeFace) points.

    All these orders start with the subject's right eye (image left), then the left eye.
    """
    points = np.asarray(landmarks, np.float32)
    if points.ndim != 2 or points.shape[0] < 3 or points.shape[1] != 2:
        raise ValueError(f"landmarks must be an (N>=3, 2) array, got shape {points.shape}")
    return points[0], points[1]


def yaw_ratio(landmarks: np.ndarray) -> float:
    """Sideways offset of the nose tip from the eyes' midpoint, in eye distances, roll removed.

    Positive when the nose is displaced towards the subject's left eye, i.e. the person turned to their
    own left (unmirrored camera image).
    """
    right_eye, left_eye = eye_points(landmarks)
    nose = np.asarray(landmarks, np.float32)[2]
    axis = left_eye - right_eye
    distance = float(np.linalg.norm(axis))
    if distance < 1e-6:
        raise ValueError("eye landmarks coincide: no yaw can be measured")
    return float(np.dot(nose - (right_eye + left_eye) / 2, axis / distance) / distance)


def estimate_yaw_deg(landmarks: np.ndarray, nose_depth_ratio: float = NOSE_DEPTH_RATIO) -> float:
    """Head yaw in degrees (positive: turned to the person's left) under weak perspective.

    With the eyes at ±IOD/2 and the nose tip ``d`` in front, a yaw θ puts the nose ``d·sin θ`` off the
    eyes' midpoint, which is ``IOD·cos θ`` wide: ratio = (d/IOD)·tan θ.
    """
    return math.degrees(math.atan(yaw_ratio(landmarks) / nose_depth_ratio))


def eye_band(grey: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The eyes and cheeks warped (similarity) to a fixed 128×56 band with the eyes 64 px apart."""
    right_eye, left_eye = eye_points(landmarks)
    src = np.array([right_eye, left_eye], np.float32)
    dx, dy = src[1] - src[0]
    distance = math.hypot(float(dx), float(dy))
    if distance < 4:
        raise ValueError(f"eyes only {distance:.1f} px apart: too small to measure")
    scale = EYE_BAND_IOD_PX / distance
    angle = math.atan2(float(dy), float(dx))
    c, s = scale * math.cos(-angle), scale * math.sin(-angle)
    rotation = np.array([[c, -s], [s, c]], np.float32)
    offset = EYE_BAND_EYES[0] - rotation @ src[0]
    matrix = np.hstack([rotation, offset[:, None]]).astype(np.float32)
    return cv2.warpAffine(grey, matrix, EYE_BAND_SIZE, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def eye_openness(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """Sclera–iris–sclera contrast of both eyes, as a fraction of the local brightness (mean of both).

    At each point of the eye patch (blurred at iris scale, σ ≈ 0.03 eye distances) it takes the darker
    of the two points ``_SCLERA_OFFSET_PX`` (≈0.14 eye distances) to the left and right, minus the point
    itself: the dark round iris between the white of the eye on both sides answers strongly. A closed
    lid does not: skin (even in shadow) is flat, and the lash line, the lid's lower edge and creases
    run *horizontally*, so their left and right neighbours are as dark as they are.
    Only meaningful relative to the same person's earlier frames.
    """
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    band = eye_band(grey, landmarks).astype(np.float32)
    blurred = cv2.GaussianBlur(band, (0, 0), sigmaX=_IRIS_SIGMA_PX, sigmaY=_IRIS_SIGMA_PX)
    d = _SCLERA_OFFSET_PX
    values = []
    for ex, ey in EYE_BAND_EYES.astype(int):
        rows = slice(ey - _EYE_HALF_H, ey + _EYE_HALF_H)
        middle = blurred[rows, ex - _EYE_HALF_W:ex + _EYE_HALF_W]
        left = blurred[rows, ex - _EYE_HALF_W - d:ex + _EYE_HALF_W - d]
        right = blurred[rows, ex - _EYE_HALF_W + d:ex + _EYE_HALF_W + d]
        response = np.minimum(left, right) - middle
        level = float(np.median(band[ey - 2 * _EYE_HALF_H:ey + 2 * _EYE_HALF_H,
                                     ex - _EYE_HALF_W:ex + _EYE_HALF_W]))
        values.append(float(response.max()) / max(level, 20.0))
    for buffer in (band, blurred):
        buffer.fill(0)
    if grey is not frame:
        grey.fill(0)
    return float(np.mean(values))


@dataclass
class FaceTrack:
    """Where the face was on one frame: enough to tell a blink from a moved photo."""

    t_s: float
    centre: np.ndarray
    eye_distance: float


def track_of(landmarks: np.ndarray, t_s: float) -> FaceTrack:
    right_eye, left_eye = eye_points(landmarks)
    return FaceTrack(t_s, (right_eye + left_eye) / 2, float(np.linalg.norm(left_eye - right_eye)))


@dataclass(frozen=True)
class BlinkLimits:
    """A blink: openness below ``closed_ratio`` × baseline for 40–700 ms, then back above ``open_ratio``."""

    baseline_frames: int = 4
    closed_ratio: float = 0.55
    open_ratio: float = 0.80
    min_closed_s: float = 0.0
    max_closed_s: float = 0.7
    max_move_eye_distances: float = 0.25   # face centre drift between open and closed frames
    max_scale_change: float = 0.12         # eye-distance change between open and closed frames


@dataclass
class BlinkDetector:
    """Finds one blink in a stream of (time, openness, track) samples."""

    limits: BlinkLimits = field(default_factory=BlinkLimits)
    openness: list[float] = field(default_factory=list)
    baseline: float | None = None
    _last_open: FaceTrack | None = None
    _closed_since: FaceTrack | None = None
    _await_open: bool = False
    rejected_motion: int = 0
    done: bool = False

    def add(self, value: float, track: FaceTrack) -> bool:
        """Feed one frame; True once a blink has been seen."""
        if self.done:
            return True
        lim = self.limits
        if self.baseline is None:
            self.openness.append(value)
            if len(self.openness) >= lim.baseline_frames:
                self.baseline = float(np.median(self.openness))
                self._last_open = track
            return False
        if self.baseline <= 0.05:
            return False  # no visible iris at all (sunglasses, or not an eye): cannot blink-check
        ratio = value / self.baseline
        if self._await_open:
            # after an over-long closure the eyes must open again before a new blink can start
            if ratio >= lim.open_ratio:
                self._await_open = False
                self._last_open = track
            return False
        if self._closed_since is None:
            if ratio < lim.closed_ratio and self._last_open is not None:
                if self._still(self._last_open, track):
                    self._closed_since = track
                else:
                    self.rejected_motion += 1
            elif ratio >= lim.open_ratio:
                self._last_open = track
                # follow slow changes of light; never learn from a dip
                self.baseline = 0.9 * self.baseline + 0.1 * value
            return False
        closed_for = track.t_s - self._closed_since.t_s
        if closed_for > lim.max_closed_s:
            self._closed_since = None  # eyes held shut, or a covered eye: not a blink
            self._await_open = True
            return False
        if ratio < lim.closed_ratio and not self._still(self._closed_since, track):
            self.rejected_motion += 1
            self._closed_since = None
            return False
        if ratio >= lim.open_ratio:
            if self._last_open is not None and self._still(self._last_open, track) \
                    and closed_for >= lim.min_closed_s:
                self.done = True
                return True
            self._closed_since = None
            self._last_open = track
        return False

    def _still(self, a: FaceTrack, b: FaceTrack) -> bool:
        move = float(np.linalg.norm(a.centre - b.centre)) / max(a.eye_distance, 1e-6)
        scale = abs(b.eye_distance / max(a.eye_distance, 1e-6) - 1)
        return move <= self.limits.max_move_eye_distances and scale <= self.limits.max_scale_change


@dataclass(frozen=True)
class TurnLimits:
    """A head turn: yaw beyond ``target_deg`` from the start pose, reached through intermediate poses."""

    baseline_frames: int = 3
    max_baseline_deg: float = 15.0  # start roughly frontal
    target_deg: float = 22.0
    ramp_frames: int = 1            # frames between 25% and 90% of the target: a turn, not a photo swap
    hold_frames: int = 2            # frames at or beyond the target
    max_jump_eye_distances: float = 0.6


@dataclass
class HeadTurnDetector:
    """Follows the yaw towards the requested side: ``direction`` +1 = person's left, −1 = right."""

    direction: int
    limits: TurnLimits = field(default_factory=TurnLimits)
    start: list[float] = field(default_factory=list)
    baseline: float | None = None
    ramp: int = 0
    hold: int = 0
    wrong_way: bool = False
    jumped: bool = False
    peak_deg: float = 0.0
    _previous: FaceTrack | None = None
    done: bool = False

    def add(self, yaw_deg: float, track: FaceTrack) -> bool:
        """Feed one frame; True once the turn has been made."""
        if self.done:
            return True
        lim = self.limits
        if self._previous is not None:
            jump = float(np.linalg.norm(track.centre - self._previous.centre)) / max(track.eye_distance, 1e-6)
            if jump > lim.max_jump_eye_distances:
                # the face teleported (a photo swapped in front of the camera): start again
                self.jumped = True
                self.ramp = self.hold = 0
        self._previous = track
        if self.baseline is None:
            if abs(yaw_deg) <= lim.max_baseline_deg:
                self.start.append(yaw_deg)
            if len(self.start) >= lim.baseline_frames:
                self.baseline = float(np.median(self.start))
            return False
        turned = (yaw_deg - self.baseline) * self.direction
        self.peak_deg = max(self.peak_deg, turned)
        if turned <= -lim.target_deg:
            self.wrong_way = True
        if 0.25 * lim.target_deg <= turned < 0.9 * lim.target_deg:
            self.ramp += 1
        if turned >= lim.target_deg:
            self.hold += 1
            if self.hold >= lim.hold_frames and self.ramp >= lim.ramp_frames:
                self.done = True
        else:
            self.hold = 0
        return self.done
