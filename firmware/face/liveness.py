"""Liveness: is a live person in front of the camera, not a photo or a screen? Passive model + active challenge.

Two independent checks, both required:

* **Passive** — ``FaceAntiSpoofing.tflite`` (see models/manifest.toml) on the face crop: the detector's
  box made square (as the model's upstream demo crops MTCNN boxes), enlarged by ``crop_scale``,
  resized to 256², RGB scaled to [0, 1]. Its two outputs (per-leaf class predictions and a one-hot
  leaf mask of a tree-routed CNN) give ``score = Σ |pred| · mask``; higher means more likely a spoof,
  and the upstream threshold is 0.2. Several frames spread over the challenge are scored and the median
  is used. Measured (docs/face-liveness.md): it rejects simulated prints and screen replays with visible
  artefacts, but also blurred or downscaled real faces, and it does *not* reject a sharp screen
  replay — which is why the active challenge exists.
* **Active** — a challenge drawn with :mod:`secrets`: blink, or turn the head to the person's left or
  right (:mod:`firmware.face.liveness_active` for the measures). A photo cannot blink, and turning a
  photo does not move the nose relative to the eyes. A replayed video of the person may contain the
  requested action: that is the passive model's job.

Privacy: frames are only read; the crops made here are zeroed after use; nothing is logged but scores
and reason codes.
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from firmware.errors import FaceError
from firmware.face.liveness_active import (
    BlinkDetector,
    BlinkLimits,
    ChallengeKind,
    HeadTurnDetector,
    TurnLimits,
    estimate_yaw_deg,
    eye_openness,
    track_of,
)
from firmware.face.models import Manifest
from firmware.face.runtime import TfliteModel

log = logging.getLogger(__name__)

__all__ = [
    "ChallengeKind", "LivenessGuidance", "LIVENESS_GUIDANCE_JA", "Challenge", "Progress", "LivenessResult",
    "PassiveLiveness", "LivenessChecker", "FaceLike",
]

PASSIVE_INPUT_SIZE = 256


class FaceLike(Protocol):
    """What the checker needs of a detection (:class:`firmware.face.detector.Face` fits)."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    landmarks5: np.ndarray | None


class LivenessGuidance(enum.Enum):
    """What the screen should say during the challenge; ``ui/`` maps codes to translated text."""

    LOOK_AT_CAMERA = "look_at_camera"
    BLINK = "blink"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    NO_FACE = "no_face"
    DONE = "done"
    TIMED_OUT = "timed_out"


#: Reference wording for the kiosk screen (the person's own left/right).
LIVENESS_GUIDANCE_JA = {
    LivenessGuidance.LOOK_AT_CAMERA: "カメラを見てください",
    LivenessGuidance.BLINK: "まばたきしてください",
    LivenessGuidance.TURN_LEFT: "顔をゆっくり左に向けてください",
    LivenessGuidance.TURN_RIGHT: "顔をゆっくり右に向けてください",
    LivenessGuidance.NO_FACE: "カメラに顔を向けてください",
    LivenessGuidance.DONE: "ありがとうございました",
    LivenessGuidance.TIMED_OUT: "もう一度お試しください",
}

_ASK = {ChallengeKind.BLINK: LivenessGuidance.BLINK, ChallengeKind.TURN_LEFT: LivenessGuidance.TURN_LEFT,
        ChallengeKind.TURN_RIGHT: LivenessGuidance.TURN_RIGHT}


@dataclass(frozen=True)
class Challenge:
    """The action asked of the person, and how long they have."""

    kind: ChallengeKind
    guidance: LivenessGuidance
    timeout_s: float


@dataclass(frozen=True)
class Progress:
    """After each frame: what to show, and whether the challenge is still running."""

    guidance: LivenessGuidance
    state: str            # "running", "passed" or "failed"
    elapsed_s: float
    remaining_s: float
    passive_frames: int

    @property
    def finished(self) -> bool:
        return self.state != "running"


@dataclass(frozen=True)
class LivenessResult:
    """The decision. ``passive_score`` is the median spoof score (None if no frame was scored).

    ``reason`` is a stable code: "live", "passive_spoof", "timeout", "wrong_direction", "no_face",
    "no_passive_frames", "incomplete", "not_started".
    """

    challenge: ChallengeKind | None
    passive_score: float | None
    passive_threshold: float
    challenge_passed: bool
    live: bool
    reason: str


class PassiveLiveness:
    """The anti-spoofing CNN on one face crop. Thread-compatible, not thread-safe (one interpreter)."""

    def __init__(self, model: TfliteModel, threshold: float, *, crop_scale: float = 1.1):
        shape = model.input_shape
        if shape != (1, PASSIVE_INPUT_SIZE, PASSIVE_INPUT_SIZE, 3):
            raise FaceError(f"liveness model {model.name} takes {shape}, expected "
                            f"(1, {PASSIVE_INPUT_SIZE}, {PASSIVE_INPUT_SIZE}, 3)")
        self.model = model
        self.threshold = float(threshold)
        self.crop_scale = crop_scale

    @classmethod
    def from_manifest(cls, manifest: Manifest | None = None, *, num_threads: int | None = None,
                      crop_scale: float = 1.1) -> PassiveLiveness:
        """Load the manifest's ``liveness`` model (hash-checked) and its ``spoof_score`` threshold."""
        manifest = manifest or Manifest()
        model, _entry = manifest.load("liveness", num_threads=num_threads)
        return cls(model, manifest.threshold("liveness", "spoof_score"), crop_scale=crop_scale)

    def crop(self, frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The model's input: square crop around ``box`` (edges replicated), 256², RGB in [0, 1]."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0) * self.crop_scale
        if side < 8:
            raise FaceError(f"face box {side:.0f} px wide is too small for the liveness model")
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        scale = PASSIVE_INPUT_SIZE / side
        matrix = np.array([[scale, 0, (side / 2 - cx) * scale], [0, scale, (side / 2 - cy) * scale]], np.float32)
        crop = cv2.warpAffine(frame, matrix, (PASSIVE_INPUT_SIZE, PASSIVE_INPUT_SIZE),
                              flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        tensor = crop.astype(np.float32)[None] / 255.0
        crop.fill(0)
        return tensor

    def score(self, frame: np.ndarray, box: Sequence[float]) -> float:
        """Spoof score of the face in ``box``: Σ |class prediction| · leaf mask (higher = spoof)."""
        tensor = self.crop(frame, box)
        try:
            outputs = self.model.run(tensor)
        finally:
            tensor.fill(0)
        return spoof_score(outputs)

    def is_live(self, score: float) -> bool:
        return score < self.threshold


def spoof_score(outputs: dict[str, np.ndarray]) -> float:
    """Combine the model's two [1, 8] outputs; "Identity" is the prediction, "Identity_1" the leaf mask."""
    try:
        prediction, mask = outputs["Identity"], outputs["Identity_1"]
    except KeyError as exc:
        raise FaceError(f"liveness model outputs {sorted(outputs)} lack {exc}: not FaceAntiSpoofing") from None
    return float(np.sum(np.abs(prediction) * mask))


def landmarks_of(face: FaceLike) -> np.ndarray:
    """ONet's 5 points when present (better), else BlazeFace's first 4 (eyes, nose, mouth)."""
    points = getattr(face, "landmarks5", None)
    return np.asarray(points if points is not None else face.keypoints[:4], np.float32)


class LivenessChecker:
    """One liveness check: ``start_challenge``, then ``add_frame`` per camera frame, then ``result``.

    Frames are read, never stored: the caller keeps ownership and zeroes them. The passive model runs
    on every ``passive_every``-th frame with a face, at most ``passive_max`` times.
    """

    def __init__(self, passive: PassiveLiveness | None, *, timeout_s: float = 8.0,
                 kinds: Sequence[ChallengeKind] = tuple(ChallengeKind),
                 passive_every: int = 3, passive_max: int = 5, require_passive: bool = True,
                 blink_limits: BlinkLimits | None = None, turn_limits: TurnLimits | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if passive is None and require_passive:
            raise FaceError("liveness needs the passive model; pass require_passive=False only in tests "
                            "of the active challenge")
        if not kinds:
            raise FaceError("at least one challenge kind is needed")
        self.passive = passive
        self.timeout_s = timeout_s
        self.kinds = tuple(kinds)
        self.passive_every = max(1, passive_every)
        self.passive_max = passive_max
        self.require_passive = require_passive
        self.blink_limits = blink_limits or BlinkLimits()
        self.turn_limits = turn_limits or TurnLimits()
        self.clock = clock
        self.challenge: Challenge | None = None
        self._reset()

    def _reset(self) -> None:
        self._detector: BlinkDetector | HeadTurnDetector | None = None
        self._start_s: float | None = None
        self._last_s = 0.0
        self._faces = 0
        self._scores: list[float] = []
        self._state = "running"
        self._reason = "incomplete"

    def start_challenge(self, rng=None) -> Challenge:
        """Draw the challenge: with ``rng`` (anything with ``choice``, for reproducible evaluation) or
        :func:`secrets.choice` (the kiosk: an attacker must not predict it)."""
        kind = rng.choice(self.kinds) if rng is not None else secrets.choice(self.kinds)
        self._reset()
        self.challenge = Challenge(kind, _ASK[kind], self.timeout_s)
        if kind is ChallengeKind.BLINK:
            self._detector = BlinkDetector(self.blink_limits)
        else:
            direction = 1 if kind is ChallengeKind.TURN_LEFT else -1
            self._detector = HeadTurnDetector(direction, self.turn_limits)
        log.info("liveness challenge: %s", kind.value)
        return self.challenge

    def add_frame(self, frame: np.ndarray, face: FaceLike | None, t_s: float | None = None) -> Progress:
        """Feed one frame and its largest face (None when no face was found); ``t_s`` defaults to the clock."""
        if self.challenge is None or self._detector is None:
            raise FaceError("start_challenge() must be called before add_frame()")
        now = self.clock() if t_s is None else float(t_s)
        if self._start_s is None:
            self._start_s = now
        self._last_s = now
        elapsed = now - self._start_s
        if self._state != "running":
            return self._progress(elapsed)
        if elapsed > self.timeout_s:
            self._finish("failed", "timeout" if self._faces else "no_face")
            return self._progress(elapsed)
        if face is None:
            return self._progress(elapsed, LivenessGuidance.NO_FACE)
        self._faces += 1
        landmarks = landmarks_of(face)
        track = track_of(landmarks, now)
        if isinstance(self._detector, BlinkDetector):
            passed = self._detector.add(eye_openness(frame, landmarks), track)
            baseline_ready = self._detector.baseline is not None
        else:
            passed = self._detector.add(estimate_yaw_deg(landmarks), track)
            baseline_ready = self._detector.baseline is not None
            if self._detector.wrong_way:
                self._finish("failed", "wrong_direction")
                return self._progress(elapsed)
        if self.passive is not None and len(self._scores) < self.passive_max \
                and (self._faces - 1) % self.passive_every == 0:
            self._scores.append(self.passive.score(frame, face.box))
        if passed:
            self._finish("passed", "live")
        guidance = self.challenge.guidance if baseline_ready else LivenessGuidance.LOOK_AT_CAMERA
        return self._progress(elapsed, guidance)

    def _finish(self, state: str, reason: str) -> None:
        self._state, self._reason = state, reason
        log.info("liveness challenge %s: %s", state, reason)

    def _progress(self, elapsed: float, guidance: LivenessGuidance | None = None) -> Progress:
        if self._state == "passed":
            guidance = LivenessGuidance.DONE
        elif self._state == "failed":
            guidance = LivenessGuidance.TIMED_OUT
        return Progress(guidance or LivenessGuidance.LOOK_AT_CAMERA, self._state, elapsed,
                        max(0.0, self.timeout_s - elapsed), len(self._scores))

    def passive_median(self) -> float | None:
        return float(np.median(self._scores)) if self._scores else None

    def result(self) -> LivenessResult:
        """The decision so far: live only if the challenge passed *and* the passive median is below threshold."""
        threshold = self.passive.threshold if self.passive is not None else float("nan")
        kind = self.challenge.kind if self.challenge is not None else None
        passive = self.passive_median()
        passed = self._state == "passed"
        if self.challenge is None:
            reason = "not_started"
        elif not passed:
            reason = self._reason
        elif self.passive is not None and passive is None:
            reason = "no_passive_frames"
        elif self.passive is not None and not self.passive.is_live(passive):
            reason = "passive_spoof"
        else:
            reason = "live"
        live = reason == "live"
        log.info("liveness result: %s (challenge %s, passive %s)", reason,
                 kind.value if kind else None, None if passive is None else round(passive, 3))
        return LivenessResult(kind, passive, threshold, passed, live, reason)
