"""Cosine scores and fusion of several frames."""

import numpy as np
import pytest

from firmware.face.embedder import cosine, fuse_mean, normalise, score_best_of, score_mean
from firmware.face.session import spread_indices


def test_cosine_and_normalise():
    a, b = np.array([3.0, 4.0]), np.array([4.0, -3.0])
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, b) == pytest.approx(0.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    np.testing.assert_allclose(np.linalg.norm(normalise(np.array([[3.0, 4.0], [0.1, 0.0]])), axis=1), 1.0)
    assert not np.isnan(normalise(np.zeros(4))).any()


def test_mean_fusion_averages_out_frame_noise():
    rng = np.random.default_rng(0)
    truth = normalise(rng.normal(size=192))
    frames = normalise(truth + rng.normal(0, 0.12, (5, 192)))
    single = [cosine(truth, f) for f in frames]
    assert cosine(truth, fuse_mean(frames)) > max(single)
    assert score_mean(truth, frames) == pytest.approx(cosine(truth, fuse_mean(frames)))
    assert score_best_of(truth, frames) == pytest.approx(max(single))


def test_spread_indices_cover_the_capture():
    assert spread_indices(3, 5) == [0, 1, 2]
    assert spread_indices(20, 5) == [0, 5, 10, 14, 19]
