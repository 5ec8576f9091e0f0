"""A face session decides from a card photo and frames, then zeroes every buffer it was given."""

import logging

import numpy as np
import pytest

from firmware.errors import FaceError
from firmware.face.quality import Guidance
from firmware.face.session import FaceSession, SessionClosed

from .helpers import camera_frames, card_like


def test_match_then_everything_is_zeroed(pipeline, astronaut, caplog):
    card = card_like(astronaut)
    card_view = card[10:100, 10:80]  # a view held by someone else sees the wipe too
    frames = camera_frames(astronaut, 6, seed=1)
    frame_views = [f[100:300, 200:400] for f in frames]
    caplog.set_level(logging.DEBUG)
    with FaceSession(pipeline, frames_needed=5) as session:
        session.add_card_photo(card)
        feedback = [session.add_frame(f) for f in frames]
        assert all(fb.guidance is Guidance.OK for fb in feedback)
        assert feedback[-1].ready and feedback[-1].good_frames == 6
        decision = session.decide()
        assert decision.match and decision.score > decision.threshold
        assert decision.frames_used == 5 and decision.fusion == "mean" and decision.rule == "mean-of-5"
        assert card_view.any() and frame_views[-1].any() and not frame_views[0].any()
    assert not card.any() and not card_view.any()
    assert all(fb.face is not None and fb.face.landmarks5.shape == (5, 2) for fb in feedback)
    assert all(not f.any() for f in frames) and all(not v.any() for v in frame_views)
    with pytest.raises(SessionClosed):
        session.decide()
    with pytest.raises(SessionClosed):
        session.add_frame(camera_frames(astronaut, 1)[0])
    # logs carry the score, never pixels or embeddings
    assert all(len(r.getMessage()) < 200 for r in caplog.records)


def test_other_person_does_not_match(pipeline, astronaut, cameraman):
    with FaceSession(pipeline) as session:
        session.add_card_photo(cameraman)
        for frame in camera_frames(astronaut, 5, seed=2):
            session.add_frame(frame)
        decision = session.decide()
    assert not decision.match


def test_decide_needs_card_and_frames(pipeline, astronaut):
    with FaceSession(pipeline) as session:
        with pytest.raises(FaceError, match="no card photo"):
            session.decide()
        session.add_card_photo(card_like(astronaut))
        with pytest.raises(FaceError, match="no usable live frame"):
            session.decide()
        feedback = session.add_frame(np.zeros((480, 640, 3), np.uint8))
        assert feedback.guidance is Guidance.NO_FACE and not feedback.ready


def test_best_of_fusion_is_selectable(pipeline, astronaut):
    with FaceSession(pipeline, fusion="best", frames_needed=2, threshold=0.5) as session:
        session.add_card_photo(card_like(astronaut))
        for frame in camera_frames(astronaut, 2, seed=4):
            session.add_frame(frame)
        assert session.decide().fusion == "best"
    with pytest.raises(FaceError, match="fusion must be one of"):
        FaceSession(pipeline, fusion="median")


def test_a_frame_stays_readable_until_the_next_one(pipeline, astronaut):
    first, second = camera_frames(astronaut, 2, seed=5)
    with FaceSession(pipeline) as session:
        session.add_frame(first)
        assert first.any()  # the liveness check may still read it
        session.add_frame(second)
        assert not first.any() and second.any()
        session.add_frame(second)  # a camera reusing its buffer: the new content is not wiped
        assert second.any()
    assert not second.any()


def test_the_session_uses_the_manifests_threshold_for_its_own_rule(pipeline):
    from firmware.errors import ModelError
    from firmware.face.models import rule_threshold_key

    thresholds = pipeline.manifest.entry_for("embedding").thresholds
    session = FaceSession(pipeline)
    assert session.rule.threshold_key() == rule_threshold_key("mean", 5) == "mean_of_5_far_1e-4"
    assert session.threshold == pytest.approx(thresholds["mean_of_5_far_1e-4"])
    assert session.threshold != pytest.approx(thresholds["single_far_1e-4"])  # not the single-frame one
    session.close()
    with pytest.raises(ModelError, match="best_of_3_far_1e-4"):
        FaceSession(pipeline, fusion="best", frames_needed=3)  # no threshold was calibrated for that rule


def test_a_recalibrated_kiosk_threshold_reaches_the_session(tmp_path):
    import shutil

    from firmware.face.models import DEFAULT_MODELS_DIR, Manifest, write_thresholds
    from firmware.face.pipeline import FacePipeline

    for name in ("manifest.toml", "face_detection_short_range.tflite", "onet.tflite", "MobileFaceNet.tflite"):
        shutil.copy(DEFAULT_MODELS_DIR / name, tmp_path / name)
    write_thresholds(tmp_path / "manifest.toml", "mobilefacenet", {"mean_of_5_far_1e-4": 0.654321,
                                                                   "single_far_1e-4": 0.111111})
    with FaceSession(FacePipeline(Manifest(tmp_path))) as session:
        assert session.threshold == pytest.approx(0.654321)


def test_live_frames_prepared_before_the_card_photo_decide_the_same(pipeline, astronaut, monkeypatch):
    """The kiosk embeds the live frames while the chip still reads the photo; the decision is unchanged."""
    frames = camera_frames(astronaut, 7, seed=5)
    with FaceSession(pipeline) as fresh:
        fresh.add_card_photo(card_like(astronaut))
        for frame in [f.copy() for f in frames[:6]]:
            fresh.add_frame(frame)
        expected = fresh.decide()
    embeds = []
    embed = pipeline.embed_aligned
    monkeypatch.setattr(pipeline, "embed_aligned", lambda crops: embeds.append(len(crops)) or embed(crops))
    with FaceSession(pipeline) as session:
        for frame in [f.copy() for f in frames[:6]]:
            session.add_frame(frame)
        session.prepare()
        assert embeds == [5]
        session.add_card_photo(card_like(astronaut))
        decision = session.decide()
        assert embeds == [5]  # nothing left to embed but the card photo
        assert decision.score == pytest.approx(expected.score, abs=1e-6)
        assert decision.frames_used == expected.frames_used and decision.match == expected.match
        session.add_frame(frames[6])  # a frame after prepare: the decision embeds afresh
        session.decide()
        assert embeds == [5, 5]
