"""Whole sequences through the real detector and models: a live blink/turn passes, photos and screens fail.

The face is scikit-image's astronaut portrait (ships in the package; no /work/shared data). Sequences
are built with :mod:`firmware.face.liveness_sim`; see docs/face-liveness.md for what that can and
cannot show. The passive model's separation of real faces from replays is measured by
``uketsuke face liveness-eval`` on real portraits, not here: the astronaut portrait is itself a scan of
a printed photograph, and the model (rightly, for that reason or not) scores it as a spoof.
"""

from __future__ import annotations

import random
import sys
import threading

import numpy as np
import pytest

from firmware.errors import FaceError
from firmware.face import liveness_sim as sim
from firmware.face.liveness import (
    LivenessChecker,
    PassiveLiveness,
    PassiveSpec,
    box_in_image,
    landmarks_of,
    spoof_score,
)
from firmware.face.liveness_active import ChallengeKind, estimate_yaw_deg, eye_openness
from firmware.face.pipeline import FacePipeline

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test portrait")


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline()


@pytest.fixture(scope="module")
def passive():
    return PassiveLiveness.from_manifest()


@pytest.fixture(scope="module")
def portrait(pipeline):
    rgb = np.ascontiguousarray(skimage_data.astronaut())
    face = pipeline.find_faces(rgb)[0]
    return rgb, face


def play(pipeline, check: LivenessChecker, presentation: sim.Presentation, rng_seed: int | None = None):
    check.start_challenge(random.Random(rng_seed) if rng_seed is not None else None)
    for frame, t_s in zip(presentation.frames, presentation.times_s, strict=True):
        faces = pipeline.find_faces(frame)
        if check.add_frame(frame, faces[0] if faces else None, t_s).finished:
            break
    return check.result()


def active_only(kind: ChallengeKind) -> LivenessChecker:
    return LivenessChecker(None, require_passive=False, kinds=(kind,))


def test_eye_openness_drops_when_the_lids_close(pipeline, portrait):
    rgb, face = portrait
    landmarks = landmarks_of(face)
    open_value = eye_openness(rgb, landmarks)
    shut = sim.close_eyes(rgb, landmarks, 1.0)
    shut_value = eye_openness(shut, landmarks_of(pipeline.find_faces(shut)[0]))
    assert open_value > 0.1
    assert shut_value < 0.5 * open_value


def test_a_blink_passes_the_blink_challenge(pipeline, portrait):
    rgb, face = portrait
    live = sim.bona_fide(rgb, landmarks_of(face), face.box, "blink", np.random.default_rng(1))
    result = play(pipeline, active_only(ChallengeKind.BLINK), live)
    assert result.challenge_passed, result


@pytest.mark.parametrize("kind", [ChallengeKind.TURN_LEFT, ChallengeKind.TURN_RIGHT])
def test_a_head_turn_passes_the_turn_challenge(pipeline, portrait, kind):
    rgb, face = portrait
    action = "turn_left" if kind is ChallengeKind.TURN_LEFT else "turn_right"
    live = sim.bona_fide(rgb, landmarks_of(face), face.box, action, np.random.default_rng(2))
    assert play(pipeline, active_only(kind), live).challenge_passed


@pytest.mark.parametrize("kind", list(ChallengeKind))
def test_a_still_photo_fails_every_challenge(pipeline, portrait, kind):
    rgb, _ = portrait
    attack = sim.still_print(rgb, np.random.default_rng(3), frames=30)
    result = play(pipeline, active_only(kind), attack)
    assert not result.challenge_passed and not result.live


@pytest.mark.parametrize("kind", [ChallengeKind.TURN_LEFT, ChallengeKind.TURN_RIGHT])
def test_a_tilted_photo_fails_the_turn_challenge(pipeline, portrait, kind):
    rgb, _ = portrait
    attack = sim.tilted_photo(rgb, np.random.default_rng(4))
    yaws = [estimate_yaw_deg(landmarks_of(f[0])) for f in map(pipeline.find_faces, attack.frames) if f]
    assert max(abs(y) for y in yaws) < 22  # the nose stays on the midline of a turned photo
    assert not play(pipeline, active_only(kind), attack).challenge_passed


@pytest.fixture(scope="module")
def antispoofing():
    return PassiveLiveness.from_manifest(entry="antispoofing")


@pytest.fixture(scope="module")
def fr_liveness():
    return PassiveLiveness.from_manifest(entry="fr_liveness")


def test_antispoofing_contract(antispoofing, portrait):
    rgb, face = portrait
    tensor = antispoofing.crop(rgb, face.box)
    assert tensor.shape == (1, 256, 256, 3) and tensor.dtype == np.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    outputs = antispoofing.model.run(tensor)
    mask = outputs["Identity_1"][0]
    assert sorted(mask.tolist()) == [0.0] * 7 + [1.0]  # one leaf of the tree is chosen
    assert spoof_score(outputs) == pytest.approx(float(np.abs(outputs["Identity"][0]) @ mask))


def test_fr_liveness_contract(fr_liveness, portrait):
    """128² RGB 0..255 unscaled, crop = box × 2.7 kept inside the frame, spoof score = 1 − softmax[1]."""
    rgb, face = portrait
    tensor = fr_liveness.crop(rgb, face.box)
    assert tensor.shape == (1, 128, 128, 3) and tensor.dtype == np.float32
    assert tensor.max() > 100  # not scaled to [0, 1]
    left, top, width, height = box_in_image(rgb.shape, face.box, 2.7)
    x0, y0, x1, y1 = face.box
    assert width == pytest.approx((x1 - x0) * 2.7) and height == pytest.approx((y1 - y0) * 2.7)
    assert 0 <= left and left + width <= rgb.shape[1] - 1 and 0 <= top and top + height <= rgb.shape[0] - 1
    logits = next(iter(fr_liveness.model.run(tensor).values()))[0]
    assert logits.shape == (3,)
    p_live = np.exp(logits[1]) / np.exp(logits).sum()
    assert fr_liveness.score(rgb, face.box) == pytest.approx(1 - p_live, abs=1e-5)


def test_box_in_image_shifts_rather_than_clips():
    left, top, width, height = box_in_image((480, 640, 3), (0, 0, 100, 100), 2.7)
    assert (left, top, width, height) == (0, 0, 270, 270)  # shifted into the frame, square kept
    left, top, width, height = box_in_image((200, 640, 3), (300, 50, 400, 150), 2.7)
    assert height == pytest.approx(199) and width == pytest.approx(199)  # scale reduced to fit
    assert top == 0


def test_passive_spec_comes_from_the_manifest_entry(antispoofing, fr_liveness):
    assert antispoofing.spec == PassiveSpec("leaf_spoof_score", "square", 1.1, pytest.approx(1 / 255), 1)
    assert fr_liveness.spec.score == "softmax_live" and fr_liveness.spec.crop == "box_in_image"
    assert fr_liveness.spec.crop_scale == 2.7 and fr_liveness.spec.pixel_scale == 1.0
    with pytest.raises(FaceError, match="score 'nonsense' unknown"):
        PassiveSpec.from_entry({"score": "nonsense"})
    with pytest.raises(FaceError, match="no liveness model 'mobilefacenet'"):
        PassiveLiveness.from_manifest(entry="mobilefacenet")


def test_screen_and_print_frames_score_as_spoofs(antispoofing, portrait):
    """Necessary, not sufficient: this portrait scores as a spoof even unprinted (module docstring)."""
    rgb, face = portrait
    rng = np.random.default_rng(5)
    for medium in (sim.screen_medium(rgb, rng), sim.print_medium(rgb, rng)):
        frame = sim.camera(medium, rng)
        assert antispoofing.score(frame, face.box) >= antispoofing.threshold


def test_a_passed_challenge_is_not_live_without_the_passive_model(pipeline, passive, portrait):
    """The replayed video does the blink; the decision still needs the passive model's agreement."""
    rgb, face = portrait
    rng = np.random.default_rng(6)
    recorded = sim.bona_fide(rgb, landmarks_of(face), face.box, "blink", rng)
    replay = sim.replay_video(recorded, rng)
    check = LivenessChecker(passive, kinds=(ChallengeKind.BLINK,))
    result = play(pipeline, check, replay)
    assert result.challenge_passed
    assert result.passive_score is not None and result.passive_score >= passive.threshold
    assert not result.live and result.reason == "passive_spoof"


def test_the_checker_keeps_no_reference_to_frames(pipeline, passive, portrait):
    rgb, face = portrait
    frame = rgb.copy()
    before = sys.getrefcount(frame)
    check = LivenessChecker(passive)
    check.start_challenge()
    for i in range(4):
        check.add_frame(frame, face, i / 15)
    assert sys.getrefcount(frame) == before


class CountingPassive:
    """Stands in for the passive model to record *which* frames the checker scores, and on which thread
    (the model's own behaviour is tested above with the real file). ``gate``, when given, holds every
    scoring call until it is set."""

    name = "counting"
    threshold = 0.2

    def __init__(self, gate: threading.Event | None = None):
        self.frames_scored: list[int] = []
        self.threads: set[str] = set()
        self.crops: list[np.ndarray] = []
        self.gate = gate

    def crop(self, frame, box) -> np.ndarray:
        tensor = np.full((1, 4, 4, 3), float(frame[0, 0, 0]) + 1, np.float32)  # + 1: never all zeros
        self.crops.append(tensor)
        return tensor

    def score_crop(self, tensor) -> float:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        self.frames_scored.append(int(tensor[0, 0, 0, 0]) - 1)
        tensor.fill(0)
        return 0.1 * len(self.frames_scored)

    def is_live(self, score: float) -> bool:
        return score < self.threshold


def feed(check: LivenessChecker, rgb, face, frames: int, no_face=()):
    check.start_challenge()
    for i in range(frames):
        frame = rgb.copy()
        frame[0, 0, 0] = i
        check.add_frame(frame, None if i in no_face else face, i / 15)


@pytest.mark.parametrize("background", [True, False])
def test_the_passive_model_runs_on_a_budget_of_spread_frames(portrait, background):
    """The kiosk's schedule: every 5th frame with a face, at most 3 per presentation — the dearest
    stage runs 3 times per decision, however long the challenge takes; frames without a face don't
    count. In the background or not, the outcome is the same."""
    rgb, face = portrait
    passive = CountingPassive()
    check = LivenessChecker(passive, kinds=(ChallengeKind.BLINK,), background=background)
    feed(check, rgb, face, 40, no_face=(1, 2))
    result = check.result()
    # faces are frames 0, 3, 4, …: the 1st, 6th and 11th of them are frames 0, 7 and 12
    assert passive.frames_scored == [0, 7, 12]
    assert result.passive_scores == pytest.approx((0.1, 0.2, 0.3))
    assert result.passive_score == pytest.approx(0.2)  # the median of the three
    assert all(not crop.any() for crop in passive.crops)  # every crop zeroed after scoring
    on_worker = all(name.startswith("passive-liveness") for name in passive.threads)
    assert on_worker is background


def test_the_challenge_does_not_wait_for_the_passive_model(portrait, no_thread_leaks):
    """Frames keep flowing while scores are pending (the capture loop keeps camera rate); result()
    waits for them, and no worker thread outlives the check."""
    rgb, face = portrait
    before = set(threading.enumerate())
    gate = threading.Event()
    passive = CountingPassive(gate)
    check = LivenessChecker(passive, kinds=(ChallengeKind.BLINK,))
    feed(check, rgb, face, 20)
    assert passive.frames_scored == []  # all three still pending, the loop went on
    assert check.add_frame(rgb.copy(), face, 21 / 15).passive_frames == 3
    gate.set()
    assert check.result().passive_scores == pytest.approx((0.1, 0.2, 0.3))
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("passive-liveness")]


def test_reset_drops_pending_scores_and_zeroes_their_crops(portrait, no_thread_leaks):
    rgb, face = portrait
    before = set(threading.enumerate())
    gate = threading.Event()
    passive = CountingPassive(gate)
    check = LivenessChecker(passive, kinds=(ChallengeKind.BLINK,))
    feed(check, rgb, face, 12)
    threading.Timer(0.2, gate.set).start()  # the call already running finishes; the others are cancelled
    check.reset()
    assert all(not crop.any() for crop in passive.crops)
    assert len(passive.frames_scored) < 3
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("passive-liveness")]
    assert check.passive_median() is None


def test_a_different_schedule_can_be_evaluated(portrait):
    rgb, face = portrait
    passive = CountingPassive()
    check = LivenessChecker(passive, passive_every=3, passive_max=5)
    feed(check, rgb, face, 20)
    check.result()
    assert passive.frames_scored == [0, 3, 6, 9, 12]
