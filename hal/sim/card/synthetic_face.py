"""The card photo of a virtual card: a greyscale JPEG 2000 (JP2) like the 券面事項確認AP's DF27.

By default a face is drawn in code (head, hair, eyes, brows, nose, mouth, shoulders, seeded
variation) so that no external image, and no real person, is needed; a caller may pass any face
image instead (e.g. a consenting volunteer's, for end-to-end face tests).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTO_SIZE = (240, 320)  # (width, height): 3:4, like the card's photo field
PHOTO_RATE = 12  # JPEG 2000 compression ratio: a ~6 KB file, the size range of real DF27 photos


def draw_synthetic_face(rng: np.random.Generator, size: tuple[int, int] = PHOTO_SIZE) -> np.ndarray:
    """Draw a frontal passport-style face; returns an (H, W) uint8 greyscale array."""
    w, h = size
    image = Image.new("L", size, int(rng.integers(200, 235)))
    draw = ImageDraw.Draw(image)
    skin = int(rng.integers(150, 200))
    hair = int(rng.integers(20, 80))
    cx = w / 2 + rng.uniform(-6, 6)
    cy = h * 0.44 + rng.uniform(-6, 6)
    fw, fh = w * rng.uniform(0.30, 0.36), h * rng.uniform(0.30, 0.34)
    # shoulders and neck
    draw.ellipse((cx - w * 0.55, h * 0.78, cx + w * 0.55, h * 1.35), fill=int(rng.integers(40, 110)))
    draw.rectangle((cx - fw * 0.35, cy + fh * 0.6, cx + fw * 0.35, h * 0.86), fill=skin - 15)
    # hair behind, then the face
    draw.ellipse((cx - fw * 1.08, cy - fh * 1.15, cx + fw * 1.08, cy + fh * 0.55), fill=hair)
    draw.ellipse((cx - fw, cy - fh, cx + fw, cy + fh), fill=skin)
    draw.chord((cx - fw * 1.02, cy - fh * 1.1, cx + fw * 1.02, cy - fh * 0.2), 180, 360, fill=hair)
    # ears
    for side in (-1, 1):
        draw.ellipse((cx + side * fw * 0.98 - 9, cy - 14, cx + side * fw * 0.98 + 9, cy + 20), fill=skin - 10)
    eye_dx, eye_y = fw * rng.uniform(0.38, 0.46), cy - fh * rng.uniform(0.08, 0.16)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse((ex - 13, eye_y - 6, ex + 13, eye_y + 6), fill=235)
        draw.ellipse((ex - 5, eye_y - 5, ex + 5, eye_y + 5), fill=int(rng.integers(10, 50)))
        draw.line((ex - 15, eye_y - 16, ex + 15, eye_y - 18 + side), fill=hair, width=4)
    draw.polygon([(cx, eye_y + 4), (cx - 9, cy + fh * 0.32), (cx + 9, cy + fh * 0.32)], fill=skin - 30)
    mouth_y = cy + fh * rng.uniform(0.52, 0.6)
    draw.arc((cx - 22, mouth_y - 12, cx + 22, mouth_y + 8), 15, 165, fill=int(rng.integers(60, 110)), width=4)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 3.0, (h, w))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def to_photo_greyscale(face: np.ndarray, size: tuple[int, int] = PHOTO_SIZE) -> np.ndarray:
    """Centre-crop ``face`` (greyscale or RGB uint8) to 3:4 and scale it to ``size``."""
    image = Image.fromarray(face).convert("L")
    w, h = image.size
    target = size[0] / size[1]
    if w / h > target:
        new_w = int(h * target)
        image = image.crop(((w - new_w) // 2, 0, (w - new_w) // 2 + new_w, h))
    else:
        new_h = int(w / target)
        image = image.crop((0, (h - new_h) // 2, w, (h - new_h) // 2 + new_h))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def encode_jp2(grey: np.ndarray, rate: int = PHOTO_RATE) -> bytes:
    """Greyscale array → JPEG 2000 in the JP2 container (irreversible 9/7, one quality layer)."""
    buffer = io.BytesIO()
    Image.fromarray(grey, "L").save(buffer, "JPEG2000", irreversible=True, quality_mode="rates",
                                    quality_layers=[rate])
    return buffer.getvalue()
