"""Liveness evaluation in ISO/IEC 30107-3 terms: APCER per attack type (and the worst), BPCER on bona fide.

Evaluation only: the sources are portraits from ``../shared/data/faces/london`` (or any folder of
``<id>/*.jpg``), which never ship. Each source still becomes, with :mod:`firmware.face.liveness_sim`:

* one bona-fide presentation: a challenge is drawn, and the "person" does what was asked;
* one presentation per attack type (PAI species): ``still_print``, ``still_screen``, ``replay_screen``
  and ``replay_sharp`` (a recorded video in which the person blinks *and* turns both ways — the worst
  case for the challenge), ``tilted_photo`` (a print turned back and forth).

Every presentation runs through the kiosk's own code: :class:`firmware.face.pipeline.FacePipeline`
finds the face on every frame and :class:`firmware.face.liveness.LivenessChecker` decides. Sequences
are 3–6 s long; a challenge not met by the end counts as not passed (the kiosk would time out).

Rates: APCER = accepted attacks / attacks of that type; BPCER = rejected bona fide / bona fide. Upper
bounds are one-sided 95% Clopper–Pearson. Frames are held in memory and zeroed after each presentation.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from firmware.face import liveness_sim as sim
from firmware.face.liveness import LivenessChecker, landmarks_of
from firmware.face.liveness_active import ChallengeKind
from firmware.face.pipeline import FacePipeline

log = logging.getLogger(__name__)

ATTACK_TYPES = ("still_print", "still_screen", "replay_screen", "replay_sharp", "tilted_photo")
PASSIVE_SWEEP = (0.2, 0.5, 0.9, 0.98)


class DataMissing(FileNotFoundError):
    """The evaluation data folder is absent (it is not part of the product)."""


@dataclass
class Outcome:
    """One presentation's result, kept so that other passive thresholds can be applied afterwards."""

    kind: str
    challenge: str
    challenge_passed: bool
    passive_score: float | None
    reason: str
    passive_scores: list[float] = field(default_factory=list)  # each scored frame, capture order


@dataclass
class Tally:
    """Outcomes of one presentation type."""

    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    def accepted(self, threshold: float) -> int:
        return sum(1 for o in self.outcomes if o.challenge_passed and o.passive_score is not None
                   and o.passive_score < threshold)

    def summary(self, threshold: float) -> dict:
        n = len(self.outcomes)
        accepted = self.accepted(threshold)
        errors = accepted if self.name != "bona_fide" else n - accepted
        return {
            "type": self.name, "n": n, "errors": errors,
            "rate": errors / n if n else float("nan"),
            "upper95": clopper_pearson_upper(errors, n),
            "challenge_passed": sum(o.challenge_passed for o in self.outcomes),
            "passive_said_live": sum(1 for o in self.outcomes
                                     if o.passive_score is not None and o.passive_score < threshold),
            "reasons": dict(Counter(o.reason for o in self.outcomes)),
        }


def clopper_pearson_upper(errors: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a binomial proportion (exact; 0 errors gives 1 − α^(1/n))."""
    if n == 0:
        return float("nan")
    if errors >= n:
        return 1.0
    alpha = 1 - confidence

    def cdf(p: float) -> float:  # P(X <= errors | p)
        return sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(errors + 1))

    lo, hi = errors / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def load_sources(root: Path, limit: int | None = None, pattern: str = "neutral.jpg") -> list[tuple[str, Path]]:
    """``(identity, image path)`` of the source stills: ``<root>/<id>/<pattern>``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataMissing(f"liveness evaluation data {root} is absent: it is evaluation-only data "
                          "(../shared/data/faces/london in CI); pass --data DIR with <id>/neutral.jpg portraits")
    found = sorted((p.parent.name, p) for p in root.glob(f"*/{pattern}"))
    if not found:
        raise DataMissing(f"no <id>/{pattern} images under {root}")
    return found[:limit] if limit else found


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataMissing(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def resize_to_face_width(rgb: np.ndarray, face_width: float, target_px: float | None) -> np.ndarray:
    """Scale the still so the face is ``target_px`` wide (kiosk-like), or return it unchanged."""
    if not target_px:
        return rgb
    scale = target_px / face_width
    return cv2.resize(rgb, None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def run_presentation(pipeline: FacePipeline, checker: LivenessChecker, presentation: sim.Presentation,
                     challenge_rng: random.Random) -> Outcome:
    """Draw a challenge, play the frames through detector and checker, and record the outcome."""
    challenge = checker.start_challenge(challenge_rng)
    for frame, t_s in zip(presentation.frames, presentation.times_s, strict=True):
        faces = pipeline.find_faces(frame)
        progress = checker.add_frame(frame, faces[0] if faces else None, t_s)
        if progress.finished:
            break
    result = checker.result()
    return Outcome(presentation.kind, challenge.kind.value, result.challenge_passed, result.passive_score,
                   result.reason, list(result.passive_scores))


ACTION_OF = {ChallengeKind.BLINK: "blink", ChallengeKind.TURN_LEFT: "turn_left",
             ChallengeKind.TURN_RIGHT: "turn_right"}


def evaluate_source(pipeline: FacePipeline, checker: LivenessChecker, rgb: np.ndarray, seed: int,
                    face_px: float | None = None, attacks: tuple[str, ...] = ATTACK_TYPES) -> list[Outcome] | None:
    """Bona fide + every attack for one source still; None when no face is found on it."""
    faces = pipeline.find_faces(rgb)
    if not faces:
        return None
    still = resize_to_face_width(rgb, faces[0].width, face_px)
    if still is not rgb:
        faces = pipeline.find_faces(still)
        if not faces:
            return None
    face = faces[0]
    landmarks = landmarks_of(face)
    rng = np.random.default_rng(seed)
    challenge_rng = random.Random(seed)
    outcomes = []

    # Bona fide: the cooperative person does what the screen asks. Peek at the draw, then replay it.
    peek = random.Random(seed).choice(checker.kinds)
    presentation = sim.bona_fide(still, landmarks, face.box, ACTION_OF[peek], rng)
    outcomes.append(run_presentation(pipeline, checker, presentation, challenge_rng))
    presentation.wipe()

    builders: dict[str, Callable[[], sim.Presentation]] = {
        "still_print": lambda: sim.still_print(still, rng),
        "still_screen": lambda: sim.still_screen(still, rng),
        "tilted_photo": lambda: sim.tilted_photo(still, rng),
    }
    recorded = None  # one recording of the person (blink, both turns) serves both replay attacks
    for attack in attacks:
        if attack in ("replay_screen", "replay_sharp"):
            if recorded is None:
                recorded = sim.bona_fide(still, landmarks, face.box, "all", rng)
            presentation = sim.replay_video(recorded, rng, sharp=attack == "replay_sharp")
        else:
            presentation = builders[attack]()
        outcome = run_presentation(pipeline, checker, presentation, challenge_rng)
        outcome.kind = attack
        outcomes.append(outcome)
        presentation.wipe()
    if recorded is not None:
        recorded.wipe()
    if still is not rgb:
        still.fill(0)
    return outcomes


def evaluate(pipeline: FacePipeline, checker: LivenessChecker, sources: list[tuple[str, Path]], *,
             seed: int = 30107, face_px: float | None = None, attacks: tuple[str, ...] = ATTACK_TYPES,
             progress: Callable[[str], None] | None = None) -> dict[str, Tally]:
    """Run every source through ``checker``; return one :class:`Tally` per presentation type
    ("bona_fide" + attacks). ``LivenessChecker(passive)`` evaluates exactly what the kiosk runs; other
    ``passive_every``/``passive_max`` measure another passive-frame schedule."""
    tallies = {name: Tally(name) for name in ("bona_fide", *attacks)}
    skipped = 0
    for index, (_identity, path) in enumerate(sources):
        rgb = read_rgb(path)
        outcomes = evaluate_source(pipeline, checker, rgb, seed * 100003 + index, face_px, attacks)
        rgb.fill(0)
        if outcomes is None:
            skipped += 1
            continue
        for outcome in outcomes:
            tallies[outcome.kind].outcomes.append(outcome)
        if progress and (index + 1) % 5 == 0:
            progress(f"{index + 1}/{len(sources)} sources")
    if skipped:
        log.warning("%d source images had no detectable face and were skipped", skipped)
    return tallies


def report(tallies: dict[str, Tally], threshold: float,
           sweep_points: tuple[float, ...] = PASSIVE_SWEEP) -> dict:
    """Rates at the operating threshold, the worst-case APCER, and a sweep of passive thresholds."""
    def at(thr: float) -> dict:
        rows = {name: tally.summary(thr) for name, tally in tallies.items()}
        attacks = [r for name, r in rows.items() if name != "bona_fide"]
        worst = max(attacks, key=lambda r: r["rate"]) if attacks else None
        return {"threshold": thr, "rows": rows,
                "worst_apcer": None if worst is None else {"type": worst["type"], "rate": worst["rate"],
                                                           "upper95": worst["upper95"]}}
    sweep = sorted({threshold, *sweep_points})
    return {"operating": at(threshold), "sweep": [at(t) for t in sweep]}
