"""Image helpers for the face tests: card-like photos and simulated camera frames, all in memory."""

import io

import cv2
import numpy as np
from PIL import Image


def card_like(rgb: np.ndarray, box=(150, 20, 330, 260), size=(120, 160), target_bytes=5000) -> np.ndarray:
    """Grey head-and-shoulders crop, card size, JPEG 2000 at about ``target_bytes``, decoded again."""
    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    ratio = small.size / target_bytes
    Image.fromarray(small).save(buf, "JPEG2000", quality_mode="rates", quality_layers=[ratio], irreversible=True)
    assert buf.tell() < 2 * target_bytes
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        return np.asarray(img.convert("L")).copy()


def camera_frames(rgb: np.ndarray, count: int, seed: int = 0) -> list[np.ndarray]:
    """640×480 frames of ``rgb`` with small shifts, rotations and exposure changes, as a camera would give."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        m = cv2.getRotationMatrix2D((256, 256), rng.uniform(-4, 4), rng.uniform(0.95, 1.05))
        m[:, 2] += rng.uniform(-10, 10, 2) + (64, -16)
        frame = cv2.warpAffine(rgb, m, (640, 480), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        frames.append(np.clip(frame * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8))
    return frames
