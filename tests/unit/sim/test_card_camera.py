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


@pytest.mark.parametrize("seed", [0, 7, 2026])
def test_frames_show_the_card_with_fresh_noise_jitter_and_light(catalogue, reader, seed):
    from hal.sim.card_camera import CardTray, _card_face

    reader.present(catalogue["card-valid"].directory)
    path = catalogue["card-valid"].directory / "card_face.png"
    scene = _card_face(str(path), path.stat().st_mtime_ns).astype(np.float32)
    tray = CardTray(reader, seed=seed)
    frames = [tray.next_frame() for _ in range(3)]
    assert all(f.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and f.dtype == np.uint8 for f in frames)
    centre = (slice(300, 660), slice(400, 880))
    for frame in frames:  # the card, within camera jitter, light and noise
        assert abs(frame[centre].astype(np.float32).mean() - scene[centre].mean()) < 0.06 * scene[centre].mean()
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    reader.remove()
    tray_frame = tray.next_frame().astype(np.float32)
    noise = tray_frame - empty_tray().astype(np.float32) * (tray_frame.mean() / empty_tray().mean())
    assert 1.0 < noise[200:700, 300:900].std() < 4.0  # sensor noise of about noise_sd
