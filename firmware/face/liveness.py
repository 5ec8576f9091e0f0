"""Liveness: is a live person in front of the camera, not a photo or a screen? Passive model + active challenge.

Two independent checks, both required:

* **Passive** — the manifest's ``[roles] liveness`` model on a face crop; its entry says how to feed
  and read it (:class:`PassiveSpec`). Two ship: ``FaceAntiSpoofing.tflite`` (square box ×1.1, 256²,
  RGB / 255, score = Σ |pred| · leaf mask of a tree-routed CNN, upstream threshold 0.2) and
  ``fr_liveness.tflite`` (MiniFASNet-like: box ×2.7 kept inside the frame, 128², RGB 0..255, 3-class
  logits, spoof score = 1 − softmax[1]). Either way :meth:`PassiveLiveness.score` is a *spoof score*
  (higher = attack) compared with the entry's ``spoof_score`` threshold. Several frames spread over
  the challenge are scored and the median is used. Measured (docs/face-liveness.md): neither model
  reliably rejects a sharp screen replay — which is why the active challenge exists.
* **Active** — a challenge drawn with :mod:`secrets`: blink, or turn the head to the person's left or
  right (:mod:`firmware.face.liveness_active` for the measures). A photo cannot blink, and turning a
  photo does not move the nose relative to the eyes. A replayed video of the person may contain the
  requested action: that is the passive model's job.

Privacy: frames are only read; the crops made here are zeroed after use; nothing is logged but scores
and reason codes.

Timing: the passive model is by far the dearest stage, so the checker crops the face in the caller's
thread (the frame is the caller's and is zeroed after the next frame) and scores the crop on one
worker thread, while the challenge goes on at camera rate; :meth:`LivenessChecker.result` waits for
the scores. The worker exists only while scores are pending.
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from firmware.errors import FaceError, ModelError
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
    "PassiveLiveness", "PassiveSpec", "LivenessChecker", "FaceLike",
]


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
    passive_scores: tuple[float, ...] = ()  # every scored frame's spoof score, in capture order


@dataclass(frozen=True)
class PassiveSpec:
    """How to feed one passive model and read its output, from its manifest entry.

    Why in the manifest: the two shipped models differ in crop, pixel scale and output, and a clinic may
    drop in a third; the code must follow the entry rather than assume one model. Keys (all optional,
    defaults = FaceAntiSpoofing): ``score`` ("leaf_spoof_score" or "softmax_live"), ``live_index``,
    ``crop`` ("square": square box, edges replicated; "box_in_image": the box enlarged and shifted to
    stay inside the frame, as MiniFASNet's reference code does), ``crop_scale``, ``pixel_scale``.
    """

    score: str = "leaf_spoof_score"
    crop: str = "square"
    crop_scale: float = 1.1
    pixel_scale: float = 1 / 255.0
    live_index: int = 1

    @classmethod
    def from_entry(cls, raw: dict) -> PassiveSpec:
        spec = cls(score=str(raw.get("score", cls.score)), crop=str(raw.get("crop", cls.crop)),
                   crop_scale=float(raw.get("crop_scale", cls.crop_scale)),
                   pixel_scale=float(raw.get("pixel_scale", cls.pixel_scale)),
                   live_index=int(raw.get("live_index", cls.live_index)))
        if spec.score not in SCORERS:
            raise FaceError(f"liveness model score {spec.score!r} unknown (known: {sorted(SCORERS)})")
        if spec.crop not in ("square", "box_in_image"):
            raise FaceError(f"liveness model crop {spec.crop!r} unknown (square, box_in_image)")
        return spec


class PassiveLiveness:
    """An anti-spoofing CNN on one face crop. Thread-compatible, not thread-safe (one interpreter).

    Whatever the model, :meth:`score` returns a *spoof score* (higher = more likely an attack) and
    ``is_live(score)`` is ``score < threshold``: for a softmax model the spoof score is 1 − p(live).
    """

    def __init__(self, model: TfliteModel, threshold: float, *, spec: PassiveSpec | None = None,
                 crop_scale: float | None = None):
        shape = model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] != shape[2]:
            raise FaceError(f"liveness model {model.name} takes {shape}, expected (1, N, N, 3)")
        self.model = model
        self.input_size = int(shape[1])
        self.threshold = float(threshold)
        spec = spec or PassiveSpec()
        self.spec = spec if crop_scale is None else replace(spec, crop_scale=crop_scale)
        self.crop_scale = self.spec.crop_scale

    @classmethod
    def from_manifest(cls, manifest: Manifest | None = None, *, entry: str | None = None,
                      num_threads: int | None = None, threshold: float | None = None) -> PassiveLiveness:
        """Load the manifest's ``liveness`` model, or the entry named ``entry`` (hash-checked), with its
        calibrated ``spoof_score`` threshold (``threshold`` overrides it: evaluation and tests only)."""
        manifest = manifest or Manifest()
        if entry is None:
            model, model_entry = manifest.load("liveness", num_threads=num_threads)
        else:
            if entry not in manifest.entries or manifest.entries[entry].role != "liveness":
                names = sorted(n for n, e in manifest.entries.items() if e.role == "liveness")
                raise FaceError(f"no liveness model {entry!r} in the manifest (liveness models: {names})")
            model_entry = manifest.entries[entry]
            model = TfliteModel(manifest.read_verified(model_entry), model_entry.name, num_threads=num_threads)
        if threshold is None:
            value = model_entry.thresholds.get("spoof_score")
            if value is None or model_entry.thresholds.get("calibrated") in (None, "not yet"):
                raise ModelError(f"liveness model {model_entry.name} has no calibrated spoof_score threshold: "
                                 "evaluate it with uketsuke face liveness-eval --model "
                                 f"{model_entry.name} and record the chosen threshold in the manifest")
            threshold = float(value)
        return cls(model, threshold, spec=PassiveSpec.from_entry(model_entry.raw))

    @property
    def name(self) -> str:
        return self.model.name

    def crop(self, frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The model's input tensor for the face in ``box``: [1, N, N, 3] float32, RGB × ``pixel_scale``."""
        x0, y0, x1, y1 = (float(v) for v in box)
        size = self.input_size
        if max(x1 - x0, y1 - y0) < 8:
            raise FaceError(f"face box {max(x1 - x0, y1 - y0):.0f} px wide is too small for the liveness model")
        if self.spec.crop == "square":
            side = max(x1 - x0, y1 - y0) * self.crop_scale
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            sx = sy = size / side
            left, top = cx - side / 2, cy - side / 2
        else:
            left, top, width, height = box_in_image(frame.shape, (x0, y0, x1, y1), self.crop_scale)
            sx, sy = size / width, size / height
        matrix = np.array([[sx, 0, -left * sx], [0, sy, -top * sy]], np.float32)
        crop = cv2.warpAffine(frame, matrix, (size, size),
                              flags=cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        tensor = crop.astype(np.float32)[None]
        crop.fill(0)
        if self.spec.pixel_scale != 1.0:
            tensor *= np.float32(self.spec.pixel_scale)
        return tensor

    def score(self, frame: np.ndarray, box: Sequence[float]) -> float:
        """Spoof score of the face in ``box`` (higher = spoof)."""
        return self.score_crop(self.crop(frame, box))

    def score_crop(self, tensor: np.ndarray) -> float:
        """Spoof score of a tensor made by :meth:`crop`, which is zeroed afterwards (whatever happens)."""
        try:
            outputs = self.model.run(tensor)
        finally:
            tensor.fill(0)
        return SCORERS[self.spec.score](outputs, self.spec)

    def is_live(self, score: float) -> bool:
        return score < self.threshold


def box_in_image(shape: Sequence[int], box: Sequence[float], scale: float) -> tuple[float, float, float, float]:
    """(left, top, width, height): ``box`` enlarged ``scale``× about its centre, the scale reduced if the
    frame is too small and the box shifted (not clipped) to stay inside — MiniFASNet's reference crop."""
    height_px, width_px = shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    scale = min((height_px - 1) / bh, (width_px - 1) / bw, scale)
    width, height = bw * scale, bh * scale
    left = min(max(0.0, (x0 + x1) / 2 - width / 2), width_px - 1 - width)
    top = min(max(0.0, (y0 + y1) / 2 - height / 2), height_px - 1 - height)
    return max(0.0, left), max(0.0, top), width, height


def spoof_score(outputs: dict[str, np.ndarray], spec: PassiveSpec | None = None) -> float:
    """FaceAntiSpoofing: "Identity" [1,8] per-leaf predictions · "Identity_1" [1,8] one-hot leaf mask."""
    try:
        prediction, mask = outputs["Identity"], outputs["Identity_1"]
    except KeyError as exc:
        raise FaceError(f"liveness model outputs {sorted(outputs)} lack {exc}: not FaceAntiSpoofing") from None
    return float(np.sum(np.abs(prediction) * mask))


def softmax_spoof_score(outputs: dict[str, np.ndarray], spec: PassiveSpec | None = None) -> float:
    """A classifier with one output of logits: spoof score = 1 − softmax[live_index]."""
    if len(outputs) != 1:
        raise FaceError(f"liveness model has outputs {sorted(outputs)}; a softmax model has exactly one")
    logits = np.asarray(next(iter(outputs.values())), np.float64).reshape(-1)
    index = (spec or PassiveSpec()).live_index
    if not 0 <= index < logits.size:
        raise FaceError(f"liveness model gives {logits.size} classes; live_index {index} is out of range")
    exp = np.exp(logits - logits.max())
    return float(1.0 - exp[index] / exp.sum())


SCORERS: dict[str, Callable[[dict[str, np.ndarray], PassiveSpec | None], float]] = {
    "leaf_spoof_score": spoof_score,
    "softmax_live": softmax_spoof_score,
}


def landmarks_of(face: FaceLike) -> np.ndarray:
    """ONet's 5 points when present (better), else BlazeFace's first 4 (eyes, nose, mouth)."""
    points = getattr(face, "landmarks5", None)
    return np.asarray(points if points is not None else face.keypoints[:4], np.float32)


class LivenessChecker:
    """One liveness check: ``start_challenge``, then ``add_frame`` per camera frame, then ``result``.

    Frames are read, never stored: the caller keeps ownership and zeroes them. The passive model runs
    on every ``passive_every``-th frame with a face, at most ``passive_max`` times.

    With ``background`` (the default) the crops are scored on a worker thread (see the module's
    "Timing"); ``result()`` and ``reset()`` wait for it, so the outcome is the same either way.

    Why a budget of 3 frames (every 5th): the passive model judges the *presentation*, not each
    frame, and it is by far the dearest stage (FaceAntiSpoofing: ~9 GFLOP at 256², ~70 ms on a 2-core
    x86, several times that on a Pi), while the challenge must see every frame at camera rate to catch
    a 270 ms blink. Three scores spread over ~0.7 s give a median; measured against five in
    docs/face-liveness.md ("Passive frames per decision").
    """

    def __init__(self, passive: PassiveLiveness | None, *, timeout_s: float = 8.0,
                 kinds: Sequence[ChallengeKind] = tuple(ChallengeKind),
                 passive_every: int = 5, passive_max: int = 3, require_passive: bool = True,
                 blink_limits: BlinkLimits | None = None, turn_limits: TurnLimits | None = None,
                 clock: Callable[[], float] = time.monotonic, background: bool = True):
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
        self.background = background
        self.challenge: Challenge | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Future, np.ndarray]] = []
        self._reset()

    def _reset(self) -> None:
        self._drop_pending()
        self._detector: BlinkDetector | HeadTurnDetector | None = None
        self._start_s: float | None = None
        self._last_s = 0.0
        self._faces = 0
        self._scores: list[float] = []
        self._state = "running"
        self._reason = "incomplete"

    def reset(self) -> None:
        """Forget the challenge and every measurement (the session calls this when it closes)."""
        self._reset()
        self.challenge = None

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
        if self.passive is not None and self._scored < self.passive_max \
                and (self._faces - 1) % self.passive_every == 0:
            self._score_passive(frame, face.box)
        if passed:
            self._finish("passed", "live")
        guidance = self.challenge.guidance if baseline_ready else LivenessGuidance.LOOK_AT_CAMERA
        return self._progress(elapsed, guidance)

    @property
    def _scored(self) -> int:
        """Frames sent to the passive model: scored, or still pending on the worker."""
        return len(self._scores) + len(self._pending)

    def _score_passive(self, frame: np.ndarray, box: Sequence[float]) -> None:
        tensor = self.passive.crop(frame, box)  # now: the frame is zeroed after the next one
        if not self.background:
            self._scores.append(self.passive.score_crop(tensor))
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="passive-liveness")
        self._pending.append((self._worker.submit(self.passive.score_crop, tensor), tensor))

    def _collect(self) -> None:
        """Wait for the pending scores (in capture order) and stop the worker."""
        try:
            for future, _tensor in self._pending:
                self._scores.append(future.result())
        finally:
            self._drop_pending()

    def _drop_pending(self) -> None:
        """Cancel or wait for pending scores, zero their crops, stop the worker (no thread outlives it)."""
        pending, self._pending = self._pending, []
        for future, _tensor in pending:
            future.cancel()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True)
        for _future, tensor in pending:
            tensor.fill(0)  # score_crop zeroed those it ran; cancelled ones are zeroed here

    def _finish(self, state: str, reason: str) -> None:
        self._state, self._reason = state, reason
        log.info("liveness challenge %s: %s", state, reason)

    def _progress(self, elapsed: float, guidance: LivenessGuidance | None = None) -> Progress:
        if self._state == "passed":
            guidance = LivenessGuidance.DONE
        elif self._state == "failed":
            guidance = LivenessGuidance.TIMED_OUT
        return Progress(guidance or LivenessGuidance.LOOK_AT_CAMERA, self._state, elapsed,
                        max(0.0, self.timeout_s - elapsed), self._scored)

    def passive_median(self) -> float | None:
        """Median spoof score of the scored frames (waits for pending ones)."""
        self._collect()
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
        return LivenessResult(kind, passive, threshold, passed, live, reason, tuple(self._scores))
