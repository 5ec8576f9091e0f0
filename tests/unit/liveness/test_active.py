"""The active challenge on landmarks alone: yaw estimation, turn detection, randomness, timeout.

Landmarks come from a generic 3-D head (eyes ±0.5, nose tip 0.45 in front, in eye distances) rotated
and projected, so the expected yaw is known exactly; a planar photo is the same points with depth 0.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

from firmware.errors import FaceError
from firmware.face import liveness as liveness_module
from firmware.face.liveness import LivenessChecker, LivenessGuidance
from firmware.face.liveness_active import ChallengeKind, estimate_yaw_deg, yaw_ratio

# subject's right eye (image left), left eye, nose tip, mouth centre: x right, y down, z to the camera
HEAD = np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.55, 0.45], [0.0, 1.0, 0.25]])
FRAME = np.zeros((8, 8, 3), np.uint8)  # turn challenges read landmarks only


@dataclass
class FakeFace:
    """A detection with only what the checker reads (the detector's real Face has the same fields)."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    landmarks5: np.ndarray | None = None


def project(yaw_deg: float, *, roll_deg: float = 0.0, planar: bool = False, perspective_iod: float | None = None,
            scale: float = 80.0, centre=(320.0, 240.0)) -> np.ndarray:
    """Rotate the head (or a photo of it: depth 0) by yaw, then roll, and project to pixels."""
    points = HEAD.copy()
    if planar:
        points[:, 2] = 0.0
    a = math.radians(yaw_deg)
    rot_y = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    p = points @ rot_y.T
    if perspective_iod:
        p = p[:, :2] * (perspective_iod / (perspective_iod - p[:, 2:3]))
    else:
        p = p[:, :2]
    r = math.radians(roll_deg)
    p = p @ np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]).T
    return (p * scale + np.array(centre)).astype(np.float32)


def face_at(yaw_deg: float, **kwargs) -> FakeFace:
    points = project(yaw_deg, **kwargs)
    x0, y0 = points.min(axis=0) - 40
    x1, y1 = points.max(axis=0) + 40
    keypoints = np.vstack([points, points[:2] + [[-30, 0], [30, 0]]])  # + ears: BlazeFace's 6 points
    return FakeFace((float(x0), float(y0), float(x1), float(y1)), keypoints)


@pytest.mark.parametrize("yaw", [-40, -25, -10, 0, 10, 25, 40])
def test_yaw_estimate_recovers_the_head_turn(yaw):
    assert estimate_yaw_deg(project(yaw)) == pytest.approx(yaw, abs=0.5)


def test_yaw_sign_is_the_persons_own_left():
    # turning to one's left moves the nose towards one's left eye, which is on the image's right
    left_turn = project(20)
    assert left_turn[2, 0] > (left_turn[0, 0] + left_turn[1, 0]) / 2
    assert estimate_yaw_deg(left_turn) > 15
    assert estimate_yaw_deg(project(-20)) < -15


@pytest.mark.parametrize("roll", [-25, 12, 30])
def test_yaw_estimate_ignores_roll(roll):
    assert estimate_yaw_deg(project(30, roll_deg=roll)) == pytest.approx(30, abs=0.5)


@pytest.mark.parametrize("tilt", [-50, -30, 0, 30, 50])
def test_tilted_photo_shows_no_yaw(tilt):
    """A planar photo turned about a vertical axis keeps the nose on the eyes' midline, even in perspective."""
    assert abs(estimate_yaw_deg(project(tilt, planar=True))) < 0.5
    # camera 8 eye distances (~50 cm) away: perspective shifts the midpoint by ~3° at 50°, far from 22°
    assert abs(estimate_yaw_deg(project(tilt, planar=True, perspective_iod=8.0))) < 5.0


def test_yaw_refuses_degenerate_landmarks():
    with pytest.raises(ValueError):
        yaw_ratio(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError):
        yaw_ratio(np.zeros((2,), np.float32))


def checker(**kwargs) -> LivenessChecker:
    return LivenessChecker(None, require_passive=False, **kwargs)


def run(check: LivenessChecker, yaws, fps=15.0, **face_kwargs):
    progress = None
    for i, yaw in enumerate(yaws):
        progress = check.add_frame(FRAME, face_at(yaw, **face_kwargs) if yaw is not None else None, i / fps)
    return progress


TURN = [0, 0, 0, 0, 6, 12, 18, 24, 30, 34, 35, 35, 30, 15, 0]


def test_a_real_turn_passes_the_turn_challenge():
    for kind, sign in ((ChallengeKind.TURN_LEFT, 1), (ChallengeKind.TURN_RIGHT, -1)):
        check = checker(kinds=(kind,))
        challenge = check.start_challenge()
        assert challenge.guidance is {1: LivenessGuidance.TURN_LEFT, -1: LivenessGuidance.TURN_RIGHT}[sign]
        progress = run(check, [sign * y for y in TURN])
        assert progress.state == "passed"
        result = check.result()
        assert result.challenge_passed and result.live and result.reason == "live"


def test_turning_the_wrong_way_fails():
    check = checker(kinds=(ChallengeKind.TURN_LEFT,))
    check.start_challenge()
    run(check, [-y for y in TURN])
    result = check.result()
    assert not result.live and result.reason == "wrong_direction"


def test_a_tilted_photo_never_passes_a_turn():
    for kind in (ChallengeKind.TURN_LEFT, ChallengeKind.TURN_RIGHT):
        check = checker(kinds=(kind,))
        check.start_challenge()
        tilts = [0, 0, 0, 0, 15, 30, 45, 55, 45, 30, 15, 0, -15, -30, -45, -55, -45, -30, 0]
        run(check, tilts, planar=True, perspective_iod=8.0)
        result = check.result()
        assert not result.challenge_passed and not result.live


def test_a_swapped_in_turned_photo_does_not_count():
    """A frontal photo replaced at once by a turned one: no intermediate poses on the way."""
    check = checker(kinds=(ChallengeKind.TURN_LEFT,))
    check.start_challenge()
    run(check, [0, 0, 0, 0, 35, 35, 35, 35, 35])
    assert not check.result().challenge_passed


def test_a_still_face_times_out():
    clock = iter(np.arange(0, 100, 0.5))
    check = checker(timeout_s=3.0, clock=lambda: float(next(clock)))
    check.start_challenge(random.Random(1))
    progress = None
    for _ in range(8):
        progress = check.add_frame(FRAME, face_at(0.0))
    assert progress.finished and progress.state == "failed"
    assert progress.guidance is LivenessGuidance.TIMED_OUT and progress.remaining_s == 0.0
    result = check.result()
    assert not result.live and result.reason == "timeout"


def test_no_face_at_all_is_reported_as_such():
    check = checker(timeout_s=1.0)
    check.start_challenge()
    progress = run(check, [None] * 10, fps=5.0)
    assert progress.state == "failed"
    assert check.result().reason == "no_face"


def test_guidance_asks_to_look_first_then_for_the_action():
    check = checker(kinds=(ChallengeKind.TURN_RIGHT,))
    check.start_challenge()
    first = check.add_frame(FRAME, face_at(0.0), 0.0)
    assert first.guidance is LivenessGuidance.LOOK_AT_CAMERA
    later = run(check, [0, 0, 0])
    assert later.guidance is LivenessGuidance.TURN_RIGHT
    assert check.add_frame(FRAME, None, 0.5).guidance is LivenessGuidance.NO_FACE


def test_frames_before_a_challenge_are_refused():
    with pytest.raises(FaceError):
        checker().add_frame(FRAME, face_at(0.0), 0.0)
    assert checker().result().reason == "not_started"


def test_passive_model_is_required_outside_tests():
    with pytest.raises(FaceError):
        LivenessChecker(None)


def test_challenges_are_drawn_with_secrets_by_default(monkeypatch):
    calls = []

    def spy(options):
        calls.append(tuple(options))
        return options[0]

    monkeypatch.setattr(liveness_module.secrets, "choice", spy)
    checker().start_challenge()
    assert calls == [tuple(ChallengeKind)]


def test_challenges_are_spread_over_all_kinds():
    draws = Counter(checker().start_challenge().kind for _ in range(600))
    assert set(draws) == set(ChallengeKind)
    # each of 3 kinds: 200 expected, sd ≈ 11.5; 5 sd either way
    assert all(140 < count < 260 for count in draws.values()), draws
    seeded = [checker().start_challenge(random.Random(7)).kind for _ in range(3)]
    assert len(set(seeded)) == 1  # a seeded rng reproduces the draw (evaluation)


def test_every_guidance_has_reference_wording():
    assert set(liveness_module.LIVENESS_GUIDANCE_JA) == set(LivenessGuidance)
    assert liveness_module.LIVENESS_GUIDANCE_JA[LivenessGuidance.BLINK] == "まばたきしてください"


def blink_run(values, centres=None, scales=None, fps=15.0):
    from firmware.face.liveness_active import BlinkDetector, FaceTrack
    detector = BlinkDetector()
    seen = False
    for i, value in enumerate(values):
        centre = np.array(centres[i] if centres else (100.0, 100.0))
        scale = scales[i] if scales else 60.0
        seen = detector.add(value, FaceTrack(i / fps, centre, scale)) or seen
    return seen, detector


def test_blink_detector_needs_a_dip_and_a_reopening():
    assert blink_run([0.4] * 5 + [0.3, 0.1, 0.1, 0.3, 0.4, 0.4])[0]
    assert not blink_run([0.4] * 5 + [0.3, 0.1, 0.1])[0]          # never reopened
    assert not blink_run([0.4] * 5 + [0.35, 0.3, 0.35, 0.4])[0]   # a flicker, not a closure
    assert not blink_run([0.4] * 5 + [0.1] * 15 + [0.4])[0]       # shut for 1 s: not a blink


def test_blink_detector_ignores_dips_caused_by_moving_the_face():
    values = [0.4] * 5 + [0.1, 0.1, 0.4, 0.4]
    moved = [(100.0, 100.0)] * 5 + [(140.0, 100.0)] * 4   # 0.67 eye distances sideways
    seen, detector = blink_run(values, centres=moved)
    assert not seen and detector.rejected_motion >= 1
    closer = [60.0] * 5 + [75.0] * 4                         # 25% larger: a photo brought closer
    assert not blink_run(values, scales=closer)[0]
