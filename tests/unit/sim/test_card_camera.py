"""The simulated card camera follows the sim reader: the tapped card's face, else the empty tray."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from firmware.card.ocr.reader import CardFaceReader, read_collation_b
from hal.camera.sim import SimCamera
from hal.nfc.sim import SimCardReader
from hal.sim.card_camera import FRAME_SIZE, empty_tray
from tests.unit.ocr.conftest import MODELS_OCR


@pytest.fixture
def reader():
    reader = SimCardReader()
    yield reader
    reader.close()


def test_the_camera_shows_the_card_in_the_field_or_the_tray(catalogue, reader):
    camera = SimCamera()
    camera.follow(reader)
    tray = camera.capture()
    assert tray.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3)
    assert np.abs(tray.astype(int) - empty_tray()).mean() < 8
    reader.present(catalogue["card-valid"].directory)
    first, second = camera.capture(), camera.capture()
    assert first.mean() > tray.mean() + 40  # a pale card on the dark tray
    assert not np.array_equal(first, second)  # jitter and noise
    reader.present(catalogue["iphone-valid"].directory)  # a phone: nothing to photograph
    assert np.abs(camera.capture().astype(int) - empty_tray()).mean() < 8
    reader.remove()
    assert np.abs(camera.capture().astype(int) - empty_tray()).mean() < 8
    camera.show(None)  # the injected-frames API still works
    assert camera.capture().shape == (480, 640, 3)


def test_ocr_on_its_frames_gives_the_profiles_collation_b(catalogue, reader):
    from firmware.card.ocr.model import load_recognizer

    info = catalogue["card-valid"]
    camera = SimCamera()
    camera.follow(reader)
    reader.present(info.directory)
    ocr = CardFaceReader(load_recognizer(MODELS_OCR, threads=1), today=dt.date(2026, 11, 20))
    result = read_collation_b([camera.capture() for _ in range(4)], ocr)
    assert result.digits == info.collation_b


def _whole_frame_reference(scene: np.ndarray, seed: int, jitter_px: float = 1.5, noise_sd: float = 2.0):
    """The frame as CardTray made it before it worked band by band (whole-frame float32 arithmetic)."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = FRAME_SIZE
    angle = rng.normal(0, 0.3)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1 + rng.normal(0, 0.003))
    matrix[:, 2] += rng.normal(0, jitter_px, 2)
    frame = cv2.warpAffine(scene, matrix, (w, h), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    frame *= rng.uniform(0.96, 1.04)
    frame += rng.normal(0, noise_sd, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 7, 2026])
def test_band_by_band_frames_are_identical_to_whole_frame_ones(catalogue, reader, seed):
    from hal.sim.card_camera import CardTray, _card_face

    tray = CardTray(reader, seed=seed)
    assert np.array_equal(tray.next_frame(), _whole_frame_reference(empty_tray(), seed))
    reader.present(catalogue["card-valid"].directory)
    path = catalogue["card-valid"].directory / "card_face.png"
    tray = CardTray(reader, seed=seed)
    assert np.array_equal(tray.next_frame(),
                          _whole_frame_reference(_card_face(str(path), path.stat().st_mtime_ns), seed))
