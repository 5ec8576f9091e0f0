"""Which face the kiosk uses: the gates and ONet's confidence choose it, not the detection's size.

Scenes are composed from scikit-image's public-domain astronaut and cameraman photos (no evaluation
data needed)."""

import cv2
import numpy as np
import pytest

from firmware.face.detector import Face
from firmware.face.quality import Guidance, QualityLimits

from .helpers import camera_frames


def _place(canvas: np.ndarray, rgb: np.ndarray, scale: float, x: int, y: int) -> None:
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    h, w = min(small.shape[0], canvas.shape[0] - y), min(small.shape[1], canvas.shape[1] - x)
    canvas[y:y + h, x:x + w] = small[:h, :w]


def _two_faces(astronaut, cameraman, cameraman_scale: float, astronaut_scale: float = 0.75) -> np.ndarray:
    """The astronaut centred (face ~95 px); the cameraman at the right edge, ``cameraman_scale`` × his
    512-px photo (his face is ~95 px at 1.0)."""
    canvas = np.full((480, 640, 3), 120, np.uint8)
    cam = np.repeat(cameraman[:, :, None], 3, axis=2)
    _place(canvas, cam[0:260, 150:370], cameraman_scale, 450, 60)
    _place(canvas, astronaut[0:300, 130:350], astronaut_scale, int(320 - 120 * astronaut_scale), 150)
    return canvas


def _centre_x(face: Face) -> float:
    return (face.box[0] + face.box[2]) / 2


@pytest.fixture
def pipelines(pipeline):
    from firmware.face.pipeline import FacePipeline

    return pipeline, FacePipeline(pipeline.manifest, face_choice="largest")


def test_a_larger_face_at_the_edge_is_not_chosen_and_says_one_person(pipelines, astronaut, cameraman):
    kiosk, largest = pipelines
    scene = _two_faces(astronaut, cameraman, 1.15)
    faces = kiosk.find_faces(scene)
    assert len(faces) == 2 and faces[1].width > faces[0].width  # the bigger face is at the edge ...
    assert abs(_centre_x(faces[0]) - 320) < 60  # ... and the centred astronaut is chosen
    assert all(f.landmark_score > 0.9 for f in faces)
    assert kiosk.analyse_frame(scene).guidance is Guidance.ONE_PERSON  # two plausible people
    old = largest.analyse_frame(scene)
    assert _centre_x(old.face) > 450  # the earlier rule took the cameraman


def test_a_small_face_in_the_background_gives_way_to_the_centred_one(pipeline, astronaut, cameraman):
    scene = _two_faces(astronaut, cameraman, 0.45)
    analysis = pipeline.analyse_frame(scene)
    assert abs(_centre_x(analysis.face) - 320) < 60
    assert analysis.guidance is Guidance.OK  # a face under 60% of the chosen one's width is no crowd


def test_a_person_in_front_who_fails_a_gate_is_not_replaced_by_a_face_at_the_edge(pipeline, astronaut,
                                                                                   cameraman):
    from firmware.face.pipeline import FacePipeline

    scene = _two_faces(astronaut, cameraman, 1.15)
    scene[150:380, 238:404] = cv2.GaussianBlur(scene[150:380, 238:404], (0, 0), 2.5)  # she moves: HOLD_STILL
    # the width rule off (second_face_fraction 5), so that only "a face nearer the centre" can say it;
    # distance, centring and pose limits loose enough for the cameraman's profile at the edge to pass
    limits = QualityLimits(second_face_fraction=5.0, min_eye_distance_px=10, max_centre_offset=0.45,
                           max_yaw_ratio=2.0, max_roll_deg=45, pitch_ratio_range=(0.0, 2.0))
    for choice in ("gates", "largest"):
        other = FacePipeline(pipeline.manifest, face_choice=choice, limits=limits)
        analysis = other.analyse_frame(scene)
        assert _centre_x(analysis.face) > 450  # the sharp cameraman at the edge passes the gates ...
        if choice == "gates":
            assert analysis.guidance is Guidance.ONE_PERSON  # ... but she is nearer the centre: not used
        else:
            assert analysis.guidance is Guidance.OK  # the earlier rule verified him


def test_a_detection_onet_does_not_believe_is_refused(pipeline, astronaut, monkeypatch):
    frame = camera_frames(astronaut, 1, seed=4)[0]
    real = pipeline.detector.detect(frame)
    assert len(real) == 1
    # a "detection" on the background (the wall beside the astronaut), larger than her face
    ghost = Face(box=(10.0, 250.0, 200.0, 440.0), score=0.9, keypoints=real[0].keypoints - (250, -200))
    monkeypatch.setattr(pipeline.detector, "detect", lambda rgb: [ghost, *real])
    faces = pipeline.find_faces(frame)
    assert len(faces) == 1 and faces[0].box == real[0].box and faces[0].landmark_score > 0.9
    assert pipeline.refiner.refine(frame, ghost).landmark_score < pipeline.limits.min_landmark_score
    assert pipeline.analyse_frame(frame).guidance is Guidance.OK  # no ONE_PERSON for the ghost
    monkeypatch.setattr(pipeline.detector, "detect", lambda rgb: [ghost])
    assert pipeline.analyse_frame(frame).guidance is Guidance.NO_FACE


def test_the_onet_floor_is_a_gate_limit(pipeline):
    assert 0.5 < QualityLimits().min_landmark_score < 0.96  # genuine faces score >= 0.96 (docs/face.md)
