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
