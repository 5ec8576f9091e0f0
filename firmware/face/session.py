"""One face verification: the card photo, the live frames, the decision, and the wipe afterwards.

Why a session object: the flow must not hold face data anywhere but here, and must be able to destroy
it in one call whatever happened (match, refusal, timeout, card removed). ``close()`` zeroes, in place,
every image buffer the session was given or made (frames, card photo, aligned crops) and every
embedding, so a view held elsewhere sees zeros too. Nothing here logs pixels or embeddings.

Fusion: several good frames are embedded and fused. The default, ``mean`` over frames spread across
the capture, measured better than best-of-N on both evaluation sets (docs/face.md). The whole rule —
which frames count (quality gate ``OK``), how many (``frames_needed``, spread over the capture), how
they are fused — is a :class:`DecisionRule`, and the threshold is the one the manifest holds *for that
rule* (``mean_of_5_far_1e-4``): evaluation (provisioning/face_eval.py) scores with the same object, so
the calibrated FAR is the FAR of the decision the kiosk makes.

Liveness: the session owns the kiosk's :class:`~firmware.face.liveness.LivenessChecker` (optional only
so that evaluation and tests can measure matching alone). Its random challenge starts when capturing
starts, it sees *every* frame's largest face — also frames that fail the quality gates, since a head
turn fails "face forward" by design — and a match counts only when the person was found live: a photo
of the right person is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from firmware.errors import FaceError
from firmware.face.detector import Face
from firmware.face.embedder import FUSIONS
from firmware.face.liveness import Challenge, LivenessChecker, LivenessGuidance, LivenessResult, Progress
from firmware.face.models import TARGET_FAR, Manifest, rule_threshold_key
from firmware.face.pipeline import FacePipeline, FrameAnalysis
from firmware.face.quality import Guidance, Quality

log = logging.getLogger(__name__)


class SessionClosed(FaceError, RuntimeError):
    """The face session was already closed (its data is gone); start a new one."""


#: Quality failures that the person fixes by acting on the screen's text before the challenge can
#: help; any other (FACE_FORWARD, HOLD_STILL, OK) gives way to the challenge while it runs, because
#: turning or blinking causes exactly those.
_BLOCKING = frozenset({Guidance.NO_FACE, Guidance.ONE_PERSON, Guidance.MOVE_CLOSER, Guidance.MOVE_BACK,
                       Guidance.CENTRE_FACE, Guidance.MORE_LIGHT, Guidance.LESS_LIGHT})


@dataclass(frozen=True)
class FrameFeedback:
    """What the screen needs after each frame: guidance, and progress towards a decision.

    ``guidance`` is the quality gate's verdict, ``liveness`` the challenge's progress (None without a
    checker); ``prompt`` is the one message to show.
    """

    guidance: Guidance
    quality: Quality | None
    good_frames: int
    frames_needed: int
    face: Face | None = None  # box and landmarks (no pixels): input of the liveness challenge
    liveness: Progress | None = None

    @property
    def liveness_guidance(self) -> LivenessGuidance | None:
        return None if self.liveness is None else self.liveness.guidance

    @property
    def prompt(self) -> Guidance | LivenessGuidance:
        """What the screen should say now: a blocking quality problem first, else the running challenge
        (「まばたきしてください」…), else the quality guidance (the challenge is over or absent)."""
        if self.liveness is None or self.liveness.finished or self.guidance in _BLOCKING:
            return self.guidance
        return self.liveness.guidance

    @property
    def ready(self) -> bool:
        """Enough good frames, and the challenge (if any) has finished, passed or failed."""
        return self.good_frames >= self.frames_needed and (self.liveness is None or self.liveness.finished)


@dataclass(frozen=True)
class FaceDecision:
    """The result of one verification. ``score`` and ``threshold`` are cosine similarities.

    ``match`` is the only field the flow may act on: the face is similar enough *and* (when the session
    has a liveness checker) the person was found live. ``face_match`` is the similarity alone; ``reason``
    is "match", "no_match" or "not_live" (then ``liveness.reason`` says why).
    """

    score: float
    threshold: float
    match: bool
    frames_used: int
    fusion: str
    model: str
    face_match: bool = False
    liveness: LivenessResult | None = None
    rule: str = ""  # the decision rule whose calibrated threshold was used, e.g. "mean-of-5"

    @property
    def live(self) -> bool | None:
        return None if self.liveness is None else self.liveness.live

    @property
    def reason(self) -> str:
        if self.match:
            return "match"
        return "not_live" if self.face_match and self.liveness is not None else "no_match"


def spread_indices(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``count`` frames (frames close in time are near-duplicates)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, wanted)})


@dataclass(frozen=True)
class DecisionRule:
    """How the kiosk turns good frames into one score: ``frames`` good frames spread over the capture,
    fused by ``fusion`` ("mean" embedding or "best" single frame), cosine against the card photo.

    A good frame is one whose quality guidance is ``OK`` (:meth:`is_good`). Evaluation uses this same
    object so that the threshold is calibrated on exactly the kiosk's decision.
    """

    fusion: str = "mean"
    frames: int = 5

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise FaceError(f"fusion must be one of {sorted(FUSIONS)}, not {self.fusion!r}")
        if self.frames < 1:
            raise FaceError(f"frames must be at least 1, not {self.frames}")

    @property
    def name(self) -> str:
        return "single" if self.frames <= 1 else f"{self.fusion}-of-{self.frames}"

    def threshold_key(self, far: float = TARGET_FAR) -> str:
        """The manifest key of this rule's threshold (``mean_of_5_far_1e-4``)."""
        return rule_threshold_key(self.fusion, self.frames, far)

    def threshold(self, manifest: Manifest, role: str = "embedding") -> float:
        """This rule's calibrated threshold from the manifest; ModelError when it was never calibrated."""
        return manifest.threshold(role, self.threshold_key())

    @staticmethod
    def is_good(analysis: FrameAnalysis) -> bool:
        return analysis.aligned is not None and analysis.guidance is Guidance.OK

    def choose(self, count: int) -> list[int]:
        """Indices of the good frames that are fused (spread over the capture)."""
        return spread_indices(count, self.frames)

    def score(self, card_embedding: np.ndarray, embeddings: np.ndarray) -> float:
        return FUSIONS[self.fusion](card_embedding, embeddings)


class FaceSession:
    """Collects a card photo and live frames, decides, and wipes everything on ``close()``.

    Use as a context manager. ``add_frame`` takes ownership of the frame array, as the camera contract
    hands frames to the caller to zero: no copy is made, the frame stays readable until the next
    ``add_frame`` (so the liveness check can use it) and is then zeroed; ``close()`` zeroes the last one.
    Only the 112² aligned crops of good frames are kept for the decision, so memory stays small however
    long the capture runs.
    """

    def __init__(self, pipeline: FacePipeline, *, threshold: float | None = None, fusion: str = "mean",
                 frames_needed: int = 5, max_frames: int = 60, liveness: LivenessChecker | None = None):
        self.rule = DecisionRule(fusion, frames_needed)  # raises FaceError for an unknown fusion
        self.pipeline = pipeline
        # the threshold calibrated for this very rule (mean_of_5_far_1e-4 by default), never another's
        self.threshold = threshold if threshold is not None else self.rule.threshold(pipeline.manifest)
        self.fusion = fusion
        self.frames_needed = frames_needed
        self.max_frames = max_frames
        self._buffers: list[np.ndarray] = []  # every image array to zero at close
        self._good: list[FrameAnalysis] = []
        self._embeddings: list[np.ndarray] = []
        self._card_embedding: np.ndarray | None = None
        self._last_frame: np.ndarray | None = None
        self._closed = False
        self._prepared: tuple[int, int, np.ndarray] | None = None  # (good frames then, frames used, embeddings)
        self.liveness = liveness
        self._challenge: Challenge | None = None

    def __enter__(self) -> FaceSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosed("face session is closed; its images were wiped")

    def add_card_photo(self, grey: np.ndarray) -> None:
        """The card's photo (greyscale uint8, decoded from the chip's JPEG 2000); raises NoFaceFound."""
        self._check_open()
        self._buffers.append(grey)
        embedding, aligned = self.pipeline.card_embedding(grey)
        self._buffers.append(aligned)
        self._card_embedding = embedding
        self._embeddings.append(embedding)

    def start_capture(self, rng=None) -> Challenge | None:
        """Start capturing: draw the liveness challenge (once per session; ``rng`` only for evaluation).

        Called by the first ``add_frame`` if the flow did not call it first; calling it before the camera
        starts lets the screen show the challenge at once. Returns the challenge (None without checker).
        """
        self._check_open()
        if self.liveness is not None and self._challenge is None:
            self._challenge = self.liveness.start_challenge(rng)
        return self._challenge

    @property
    def challenge(self) -> Challenge | None:
        """The challenge drawn for this session (its ``guidance`` is the screen's instruction)."""
        return self._challenge

    def add_frame(self, rgb: np.ndarray, t_s: float | None = None) -> FrameFeedback:
        """Analyse one live frame; good frames are kept (up to ``max_frames``) for the decision.

        Every frame (good or not) also goes to the liveness challenge with its largest face. ``t_s`` is the
        frame's capture time in seconds (default: the checker's monotonic clock at this call).
        """
        self._check_open()
        self._wipe_last_frame(keep=rgb)
        self._last_frame = rgb
        analysis = self.pipeline.analyse_frame(rgb)
        progress = None
        if self.liveness is not None:
            self.start_capture()
            progress = self.liveness.add_frame(rgb, analysis.face, t_s)
        if analysis.aligned is not None:
            if self.rule.is_good(analysis) and len(self._good) < self.max_frames:
                self._buffers.append(analysis.aligned)
                self._good.append(analysis)
            else:
                analysis.aligned.fill(0)
        return FrameFeedback(analysis.guidance, analysis.quality, len(self._good), self.frames_needed,
                             analysis.face, progress)

    def _wipe_last_frame(self, keep: np.ndarray | None = None) -> None:
        last, self._last_frame = self._last_frame, None
        if last is None or not last.flags.writeable:
            return
        if keep is not None and np.shares_memory(last, keep):
            return  # the camera handed the same buffer again: it holds the new frame now
        last.fill(0)

    @property
    def good_faces(self) -> list[FrameAnalysis]:
        """Accepted frames' analyses (landmarks for the liveness challenge); wiped at close."""
        return list(self._good)

    def prepare(self) -> None:
        """Embed the live frames the decision will use, before the card photo is there.

        The kiosk calls it while the chip is still reading the photo, so that only the card photo's
        embedding and the comparison are left once it arrives. Frames added later make it stale
        (``decide`` then embeds afresh).
        """
        self._check_open()
        if not self._good:
            raise FaceError("no usable live frame yet: keep calling add_frame until feedback.ready")
        if self._prepared is None or self._prepared[0] != len(self._good):
            chosen = [self._good[i].aligned for i in self.rule.choose(len(self._good))]
            embeddings = self.pipeline.embed_aligned(chosen)
            self._embeddings.append(embeddings)
            self._prepared = (len(self._good), len(chosen), embeddings)

    def decide(self) -> FaceDecision:
        """Fuse the good frames (spread over the capture) and compare with the card photo."""
        self._check_open()
        if self._card_embedding is None:
            raise FaceError("no card photo in this session: call add_card_photo first")
        self.prepare()  # raises without a good frame; a no-op when prepared for these frames
        _, used, embeddings = self._prepared
        score = self.rule.score(self._card_embedding, embeddings)
        face_match = score > self.threshold
        liveness = self.liveness.result() if self.liveness is not None else None
        decision = FaceDecision(score=score, threshold=self.threshold,
                                match=face_match and (liveness is None or liveness.live),
                                frames_used=used, fusion=self.fusion,
                                model=self.pipeline.embedding_entry.name, face_match=face_match,
                                liveness=liveness, rule=self.rule.name)
        log.info("face decision: %s (score %.3f threshold %.3f, liveness %s, frames %d)",
                 decision.reason, decision.score, decision.threshold,
                 "off" if liveness is None else liveness.reason, decision.frames_used)
        return decision

    def close(self) -> None:
        """Zero every image and embedding in place and drop the references. Idempotent."""
        self._wipe_last_frame()
        for array in self._buffers + self._embeddings:
            if isinstance(array, np.ndarray) and array.flags.writeable:
                array.fill(0)
        self._buffers.clear()
        self._embeddings.clear()
        self._good.clear()
        self._card_embedding = None
        self._prepared = None
        if self.liveness is not None:
            self.liveness.reset()  # per-person measurements (openness, yaw, scores) go with the session
        self._closed = True
