"""What the simulated card camera sees: the card face of whatever the sim reader holds, or the tray.

``SimCamera.follow(reader)`` (hal.camera.sim) makes the camera look at a :class:`~hal.nfc.sim.SimCardReader`'s
field: when the card in it has a ``card_face.png`` (generated profiles of physical cards do, see
``hal.sim.card.generator``), every frame is that photograph with a little camera jitter, a light
change and sensor noise, 1280×960 as the real card camera; otherwise (no card, a phone, a profile
without the image) an empty dark tray.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

FRAME_SIZE = (1280, 960)  # (width, height), as hal.sim.card_face renders
NOISE_BAND_ROWS = 64


@functools.lru_cache(maxsize=8)
def _card_face(path: str, mtime_ns: int) -> np.ndarray | None:
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    if rgb.shape[1::-1] != FRAME_SIZE:
        rgb = cv2.resize(rgb, FRAME_SIZE, interpolation=cv2.INTER_AREA)
    rgb.flags.writeable = False
    return rgb


@functools.lru_cache(maxsize=1)
def empty_tray() -> np.ndarray:
    """The tray with nothing on it: a dark, unevenly lit surface (read-only)."""
    w, h = FRAME_SIZE
    rng = np.random.default_rng(0x7A7)
    coarse = cv2.resize(rng.normal(0, 8, (6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    tray = np.clip(coarse + np.array([48, 50, 54], np.float32), 0, 255).astype(np.uint8)
    tray.flags.writeable = False
    return tray


def card_face_path(reader) -> Path | None:
    """The ``card_face.png`` of the card in ``reader``'s field, if it has one."""
    card = getattr(reader, "card", None)
    directory = getattr(card, "profile_dir", None)
    if directory is None:
        return None
    path = Path(directory) / "card_face.png"
    return path if path.is_file() else None


class CardTray:
    """A camera source that follows a sim reader (anything with a ``card`` whose ``profile_dir`` is set).

    Sensor noise comes from one field drawn at the first frame (twice the frame's height, int8) that
    every frame reads at a random row offset: drawing 3.7 million normals for each 1280×960 frame
    took ~60 ms, on the kiosk's own threads, which a real camera never costs (the check-in benchmark
    measures the kiosk, not the simulator). Frames still differ in noise, jitter and light.
    """

    def __init__(self, reader, *, seed: int | None = None, jitter_px: float = 1.5, noise_sd: float = 2.0):
        self.reader = reader
        self.jitter_px = jitter_px
        self.noise_sd = noise_sd
        self._rng = np.random.default_rng(seed)
        self._noise: np.ndarray | None = None

    def _noise_field(self) -> np.ndarray:
        if self._noise is None:
            w, h = FRAME_SIZE
            field = np.empty((2 * h, w, 3), np.int8)
            for top in range(0, 2 * h, NOISE_BAND_ROWS):  # in bands: no 60 MB float64 field on the way
                rows = field[top:top + NOISE_BAND_ROWS]
                band = self._rng.standard_normal(rows.shape, dtype=np.float32)
                band *= self.noise_sd
                np.rint(band, out=band)
                np.clip(band, -127, 127, out=band)
                rows[...] = band
            self._noise = field
        return self._noise

    def next_frame(self) -> np.ndarray:
        path = card_face_path(self.reader)
        scene = _card_face(str(path), path.stat().st_mtime_ns) if path is not None else None
        if scene is None:
            scene = empty_tray()
        rng = self._rng
        w, h = FRAME_SIZE
        noise = self._noise_field()
        angle = rng.normal(0, 0.3)
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1 + rng.normal(0, 0.003))
        matrix[:, 2] += rng.normal(0, self.jitter_px, 2)
        frame = cv2.warpAffine(scene, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
        gain = rng.uniform(0.96, 1.04)
        offset = int(rng.integers(0, h))
        # light change and noise band by band, in place (no whole-frame float copies)
        for top in range(0, h, NOISE_BAND_ROWS):
            rows = frame[top:top + NOISE_BAND_ROWS]
            band = rows.astype(np.float32)
            band *= gain
            band += noise[offset + top:offset + top + len(rows)]
            np.clip(band, 0, 255, out=band)
            rows[...] = band  # float32 in [0, 255] → uint8 truncates
        return frame
