"""The face session with its liveness checker: a match counts only when the person was found live.

Sequences come from :mod:`firmware.face.liveness_sim` over scikit-image's astronaut portrait, framed
like the kiosk camera (640×480). That portrait is a scan of a printed photograph and both shipped
passive models score it as a spoof (tests/unit/liveness explains), so the bona-fide case that must
*pass* runs the active challenge alone; with the real passive model the same sequence is refused as
``passive_spoof``, which shows that the passive result reaches the decision too.
"""

import random

import cv2
import numpy as np
import pytest

from firmware.face import liveness_sim as sim
from firmware.face.liveness import LivenessChecker, LivenessGuidance, PassiveLiveness, landmarks_of
from firmware.face.liveness_active import ChallengeKind
from firmware.face.models import Manifest
from firmware.face.quality import Guidance
from firmware.face.session import FaceSession

from .helpers import camera_frames, card_like

# these sessions fuse fewer frames than the kiosk's 5 to keep the simulated captures short; the manifest
# has a threshold only for the kiosk's rule, so they pass it explicitly (FaceSession refuses otherwise)
KIOSK = Manifest().threshold("embedding")


@pytest.fixture(scope="module")
def passive():
    return PassiveLiveness.from_manifest()


def framed(astronaut: np.ndarray) -> np.ndarray:
    """The portrait as the kiosk camera frames it (the same placement as helpers.camera_frames)."""
    m = np.array([[1, 0, 64], [0, 1, -16]], np.float32)
    return cv2.warpAffine(astronaut, m, (640, 480), borderMode=cv2.BORDER_REPLICATE)


def bona_fide_turn(pipeline, astronaut, action: str, seed: int) -> sim.Presentation:
    scene = framed(astronaut)
    face = pipeline.find_faces(scene)[0]
    return sim.bona_fide(scene, landmarks_of(face), face.box, action, np.random.default_rng(seed))


def test_a_still_photo_of_the_right_person_is_refused_as_not_live(pipeline, passive, astronaut):
    card = card_like(astronaut)
    frames = camera_frames(astronaut, 20, seed=11)  # the same photo moved about in front of the camera
    views = [f[100:300, 200:400] for f in frames]
    checker = LivenessChecker(passive)
    with FaceSession(pipeline, frames_needed=5, liveness=checker) as session:
        session.add_card_photo(card)
        challenge = session.start_capture()
        assert session.challenge is challenge and challenge.kind in ChallengeKind
        feedback = [session.add_frame(f, t_s=i * 0.5) for i, f in enumerate(frames)]  # 9.5 s > timeout
        assert not feedback[5].ready  # enough good frames, but the challenge is still running
        assert feedback[-1].ready and feedback[-1].liveness.state == "failed"
        decision = session.decide()
    assert decision.face_match and decision.score > decision.threshold  # the face is the card's
    assert not decision.match and decision.reason == "not_live"
    assert decision.live is False and not decision.liveness.challenge_passed
    assert decision.liveness.reason == "timeout"
    assert all(not f.any() for f in frames) and all(not v.any() for v in views) and not card.any()
    assert checker.challenge is None  # the checker forgot this person with the session


@pytest.mark.parametrize("kind, action", [(ChallengeKind.TURN_LEFT, "turn_left"),
                                          (ChallengeKind.BLINK, "blink")])
def test_a_live_sequence_doing_the_challenge_matches(pipeline, astronaut, kind, action):
    presentation = bona_fide_turn(pipeline, astronaut, action, seed=12)
    views = [f[150:250, 250:350] for f in presentation.frames]
    checker = LivenessChecker(None, require_passive=False)  # active only: see the module docstring
    with FaceSession(pipeline, frames_needed=3, liveness=checker, threshold=KIOSK) as session:
        session.add_card_photo(card_like(astronaut))
        session.start_capture(_Forced(kind))
        feedback = [session.add_frame(f, t_s) for f, t_s in zip(presentation.frames, presentation.times_s,
                                                                 strict=True)]
        decision = session.decide()
    assert decision.match and decision.face_match and decision.live
    assert decision.liveness.challenge == kind and decision.liveness.reason == "live"
    assert any(fb.ready for fb in feedback)
    if kind is ChallengeKind.TURN_LEFT:
        # the turned frames fail the "face forward" gate; they still reached the challenge
        turned = [fb for fb in feedback if fb.guidance is Guidance.FACE_FORWARD]
        assert turned and all(fb.face is not None for fb in turned)
        assert any(fb.prompt is LivenessGuidance.TURN_LEFT for fb in turned)
    assert all(not v.any() for v in views)


def test_the_right_person_live_on_the_challenge_is_still_refused_when_the_passive_model_says_spoof(
        pipeline, passive, astronaut):
    presentation = bona_fide_turn(pipeline, astronaut, "turn_right", seed=13)
    with FaceSession(pipeline, frames_needed=3, liveness=LivenessChecker(passive), threshold=KIOSK) as session:
        session.add_card_photo(card_like(astronaut))
        session.start_capture(_Forced(ChallengeKind.TURN_RIGHT))
        for frame, t_s in zip(presentation.frames, presentation.times_s, strict=True):
            session.add_frame(frame, t_s)
        decision = session.decide()
    assert decision.liveness.challenge_passed and decision.liveness.reason == "passive_spoof"
    assert decision.face_match and not decision.match and decision.reason == "not_live"


def test_guidance_for_the_screen(pipeline, astronaut):
    checker = LivenessChecker(None, require_passive=False)
    frames = camera_frames(astronaut, 5, seed=14)
    with FaceSession(pipeline, liveness=checker) as session:
        challenge = session.start_capture(random.Random(3))
        assert challenge.guidance in (LivenessGuidance.BLINK, LivenessGuidance.TURN_LEFT,
                                      LivenessGuidance.TURN_RIGHT)
        assert session.start_capture() is challenge  # one challenge per session
        first = session.add_frame(frames[0], 0.0)
        assert first.guidance is Guidance.OK and first.prompt is LivenessGuidance.LOOK_AT_CAMERA  # baseline
        later = [session.add_frame(f, i / 15) for i, f in enumerate(frames[1:], 1)]
        assert later[-1].liveness_guidance is challenge.guidance and later[-1].prompt is challenge.guidance
        empty = session.add_frame(np.zeros((480, 640, 3), np.uint8), 0.4)
        assert empty.prompt is Guidance.NO_FACE and empty.liveness_guidance is LivenessGuidance.NO_FACE


def test_without_a_checker_the_session_matches_on_the_face_alone(pipeline, astronaut):
    with FaceSession(pipeline, frames_needed=2, threshold=KIOSK) as session:
        session.add_card_photo(card_like(astronaut))
        assert session.start_capture() is None
        feedback = [session.add_frame(f) for f in camera_frames(astronaut, 2, seed=15)]
        decision = session.decide()
    assert feedback[-1].ready and feedback[-1].liveness is None and feedback[-1].prompt is Guidance.OK
    assert decision.match and decision.liveness is None and decision.live is None


class _Forced:
    """An ``rng`` whose ``choice`` returns the challenge the simulated person was recorded doing."""

    def __init__(self, kind: ChallengeKind):
        self.kind = kind

    def choice(self, kinds):
        assert self.kind in kinds
        return self.kind
