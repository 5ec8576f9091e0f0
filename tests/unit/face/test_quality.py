"""Quality gates turn measured faults into the right guidance code."""

import cv2
import numpy as np
import pytest

from firmware.face.align import ARCFACE_5
from firmware.face.detector import Face
from firmware.face.quality import (
    GUIDANCE_JA,
    Guidance,
    QualityLimits,
    crowd_guidance,
    guidance_for,
    measure,
    pose_from_landmarks,
)

FRAME = (480, 640, 3)


def textured_face(brightness=128, blur=0) -> np.ndarray:
    """A 112² 'aligned face' with fine texture (sharp) at a chosen mean brightness."""
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(brightness, 30, (112, 112)), 0, 255).astype(np.uint8)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return np.repeat(img[:, :, None], 3, axis=2)


def face_at(centre=(320, 240), eye_px=70.0, landmarks=None) -> Face:
    """A face whose 5 landmarks are the template scaled to ``eye_px`` eye distance around ``centre``."""
    points = landmarks if landmarks is not None else ARCFACE_5
    scale = eye_px / (ARCFACE_5[1, 0] - ARCFACE_5[0, 0])
    pts = (points - [56, 60]) * scale + centre
    half = 56 * scale
    box = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    return Face(box=box, score=0.9, keypoints=np.zeros((6, 2), np.float32), landmarks5=pts.astype(np.float32))


def gate(face, aligned=None):
    aligned = textured_face() if aligned is None else aligned
    return guidance_for(measure(FRAME, face, aligned), face)


def test_frontal_sharp_well_lit_face_is_ok():
    assert gate(face_at()) is Guidance.OK


def test_template_pose_is_frontal():
    yaw, roll, pitch = pose_from_landmarks(ARCFACE_5)
    assert abs(yaw) < 0.01 and abs(roll) < 0.5 and 0.4 < pitch < 0.6


@pytest.mark.parametrize("eye_px,expected", [(20, Guidance.MOVE_CLOSER), (250, Guidance.MOVE_BACK)])
def test_distance_gates(eye_px, expected):
    assert gate(face_at(eye_px=eye_px)) is expected


def test_small_face_in_a_large_frame_asks_to_come_closer():
    face = face_at(centre=(960, 540), eye_px=40)  # eye distance fine in pixels, small in the frame
    assert guidance_for(measure((1080, 1920, 3), face, textured_face()), face) is Guidance.MOVE_CLOSER


def test_off_centre_face():
    assert gate(face_at(centre=(600, 240))) is Guidance.CENTRE_FACE


def test_turned_head_asks_to_face_forward():
    yawed = ARCFACE_5.copy()
    yawed[2, 0] += 12  # nose far towards one eye: head turned
    assert gate(face_at(landmarks=yawed)) is Guidance.FACE_FORWARD
    rolled = ARCFACE_5.copy()
    rolled[1, 1] -= 15  # one eye much higher: head tilted
    assert gate(face_at(landmarks=rolled)) is Guidance.FACE_FORWARD
    pitched = ARCFACE_5.copy()
    pitched[2, 1] += 17  # nose down at the mouth: looking down
    assert gate(face_at(landmarks=pitched)) is Guidance.FACE_FORWARD


def test_exposure_gates():
    assert gate(face_at(), textured_face(brightness=30)) is Guidance.MORE_LIGHT
    assert gate(face_at(), textured_face(brightness=235)) is Guidance.LESS_LIGHT


def test_motion_blur_asks_to_hold_still():
    assert gate(face_at(), textured_face(blur=3)) is Guidance.HOLD_STILL


def test_crowd_gates():
    assert crowd_guidance([]) is Guidance.NO_FACE
    one = face_at()
    assert crowd_guidance([one]) is None
    assert crowd_guidance([one, face_at(centre=(100, 240))]) is Guidance.ONE_PERSON
    assert crowd_guidance([one, face_at(centre=(100, 240), eye_px=20)]) is None  # someone far behind


def test_every_code_has_japanese_guidance():
    assert set(GUIDANCE_JA) == set(Guidance)
    assert GUIDANCE_JA[Guidance.MOVE_CLOSER].startswith("もう少し近づいて")


def test_limits_are_adjustable():
    strict = QualityLimits(min_sharpness=1e9)
    face = face_at()
    assert guidance_for(measure(FRAME, face, textured_face()), face, strict) is Guidance.HOLD_STILL
