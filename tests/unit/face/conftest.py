"""Shared fixtures: the real pipeline with the shipped models (loaded once), and test images that ship
inside an installed package (scikit-image's public-domain astronaut and cameraman photos). Tests that
need the images skip, with the reason, when scikit-image is not installed; the others still run."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def pipeline():
    from firmware.face.pipeline import FacePipeline

    return FacePipeline()


def _skimage_data():
    return pytest.importorskip("skimage.data", reason="scikit-image (dev extra) provides the test face images")


@pytest.fixture
def astronaut() -> np.ndarray:
    return np.array(_skimage_data().astronaut(), dtype=np.uint8)  # writable copy


@pytest.fixture
def cameraman() -> np.ndarray:
    return np.array(_skimage_data().camera(), dtype=np.uint8)
