"""The whole pipeline on real photos that ship in scikit-image (public-domain NASA astronaut portrait,
the classic cameraman): self-match above the calibrated threshold, another person below, no face found
in a photo without one."""

import numpy as np
import pytest

from firmware.errors import FaceError
from firmware.face.embedder import cosine
from firmware.face.pipeline import NoFaceFound
from firmware.face.quality import Guidance

from .helpers import camera_frames, card_like


def test_astronaut_frame_is_usable(pipeline, astronaut):
    analysis = pipeline.analyse_frame(camera_frames(astronaut, 1)[0])
    assert analysis.guidance is Guidance.OK
    assert analysis.aligned.shape == (112, 112, 3)
    left_eye, right_eye = analysis.face.landmarks5[:2]
    assert left_eye[0] < right_eye[0]  # template order: image-left eye first


def test_self_match_is_above_threshold_and_other_person_below(pipeline, astronaut, cameraman):
    threshold = pipeline.manifest.threshold("embedding")
    frame_a, frame_b = camera_frames(astronaut, 2, seed=3)
    a, _ = pipeline.face_embedding(frame_a)
    b, _ = pipeline.face_embedding(frame_b)
    assert cosine(a, b) > threshold
    card, _ = pipeline.card_embedding(card_like(astronaut))
    assert cosine(card, a) > threshold
    other, _ = pipeline.card_embedding(cameraman)
    assert cosine(other, a) < threshold


def test_no_face_in_a_photo_without_one(pipeline):
    skimage_data = pytest.importorskip("skimage.data")

    coffee = np.array(skimage_data.coffee())
    assert pipeline.analyse_frame(coffee).guidance is Guidance.NO_FACE
    with pytest.raises(NoFaceFound, match="no face found in the card photo"):
        pipeline.card_embedding(np.full((160, 120), 128, np.uint8))


def test_bad_input_is_a_typed_error(pipeline):
    with pytest.raises(FaceError, match="uint8"):
        pipeline.analyse_frame(np.zeros((480, 640, 3), np.float32))
    with pytest.raises(FaceError, match=r"\(H, W, 3\)"):
        pipeline.analyse_frame(np.zeros((480, 640), np.uint8))
    with pytest.raises(FaceError, match="greyscale"):
        pipeline.card_embedding(np.zeros((10, 10, 3), np.uint8))
