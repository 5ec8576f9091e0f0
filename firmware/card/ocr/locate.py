"""Find the card in a card-camera frame and cut straightened crops of the fields 照合番号B needs.

Why no text detector: the card is a rigid ID-1 rectangle, so once its four edges are found every field
sits in a fixed box on the canonical card. The edges are found with OpenCV contours on a half-size
grey image (the card tray is dark, the card light), then each side is re-fitted as a straight line
through its middle part so the rounded corners do not pull the corners inwards.

Crops are warped straight from the frame (one homography per box) at ``CANONICAL_PX_PER_MM``; the
whole card is never warped, which saves most of the time and most of the personal data in memory.

The boxes below match ``hal.sim.card_face``'s layout. Before deployment they must be measured on
real cards (see docs/notes/card-ocr.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

CARD_W_MM, CARD_H_MM = 85.60, 53.98  # ISO/IEC 7810 ID-1
CANONICAL_PX_PER_MM = 16  # card-ocr.md: warp at >= 12 px/mm
_ASPECT = CARD_W_MM / CARD_H_MM
_DETECT_SCALE = 0.5


@dataclass(frozen=True)
class CropBox:
    """A field's box on the canonical card, in millimetres from the top-left corner."""

    x0: float
    y0: float
    x1: float
    y1: float


CROP_BOXES_MM = {
    "birth": CropBox(8.5, 28.9, 43.5, 33.3),
    "expiry": CropBox(8.5, 35.7, 58.0, 40.1),
    "code": CropBox(62.5, 38.7, 74.5, 43.6),
}


def _order_corners(points: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left (the card lies roughly level, ±~30°)."""
    points = points.reshape(4, 2).astype(np.float32)
    s = points.sum(axis=1)
    d = points[:, 1] - points[:, 0]
    return np.array([points[s.argmin()], points[d.argmin()], points[s.argmax()], points[d.argmax()]],
                    np.float32)


def _refit_sides(contour: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Fit a line to the middle 70 % of each side and intersect neighbours: sub-pixel corners."""
    pts = contour.reshape(-1, 2).astype(np.float32)
    lines = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        direction = b - a
        length = float(np.hypot(*direction))
        unit = direction / length
        normal = np.array([-unit[1], unit[0]], np.float32)
        rel = pts - a
        along = rel @ unit
        across = np.abs(rel @ normal)
        near = pts[(along > 0.15 * length) & (along < 0.85 * length) & (across < max(3.0, 0.03 * length))]
        if len(near) < 10:
            return corners
        vx, vy, x0, y0 = cv2.fitLine(near, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    refined = []
    for i in range(4):
        (p1, d1), (p2, d2) = lines[i - 1], lines[i]
        matrix = np.array([d1, -d2]).T
        if abs(np.linalg.det(matrix)) < 1e-6:
            return corners
        t = np.linalg.solve(matrix, p2 - p1)
        refined.append(p1 + t[0] * d1)
    return np.array(refined, np.float32)


def locate_card(frame_rgb: np.ndarray) -> np.ndarray | None:
    """The card's corners in frame pixels (TL, TR, BR, BL), or None when no card-shaped quad is seen."""
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(f"frame must be an RGB uint8 array (H, W, 3), not {frame_rgb.dtype} {frame_rgb.shape}")
    grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.GaussianBlur(cv2.resize(grey, None, fx=_DETECT_SCALE, fy=_DETECT_SCALE,
                                        interpolation=cv2.INTER_AREA), (5, 5), 0)
    grey.fill(0)  # it holds the holder's photo
    try:
        return _locate_in(small)
    finally:
        small.fill(0)


def _locate_in(small: np.ndarray) -> np.ndarray | None:
    """Find the card outline in the half-size, blurred grey frame; corners in full-frame pixels."""
    _, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    frame_area = small.shape[0] * small.shape[1]
    if not 0.08 * frame_area < cv2.contourArea(contour) < 0.9 * frame_area:
        return None
    x, y, w, h = cv2.boundingRect(contour)
    if x <= 1 or y <= 1 or x + w >= small.shape[1] - 1 or y + h >= small.shape[0] - 1:
        log.debug("card touches the frame edge: not wholly in view")
        return None
    inside = cv2.drawContours(np.zeros_like(binary), [contour], -1, 255, cv2.FILLED) > 0
    if float(small[inside].mean()) - float(small[~inside].mean()) < 25:
        log.debug("light shape too faint against the tray to be the card")
        return None
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.05):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(approx) == 4:
            quad = approx
            break
    if quad is None:
        quad = cv2.boxPoints(cv2.minAreaRect(hull))
    corners = _refit_sides(contour, _order_corners(quad)) / _DETECT_SCALE
    top = np.hypot(*(corners[1] - corners[0]))
    left = np.hypot(*(corners[3] - corners[0]))
    if left < 1 or not 0.75 * _ASPECT < top / left < 1.25 * _ASPECT:
        log.debug("largest light shape is not card-shaped (aspect %.2f)", top / max(left, 1))
        return None
    return corners


def card_homography(corners: np.ndarray) -> np.ndarray:
    """Frame pixels → canonical card pixels (``CANONICAL_PX_PER_MM``)."""
    w, h = CARD_W_MM * CANONICAL_PX_PER_MM, CARD_H_MM * CANONICAL_PX_PER_MM
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return cv2.getPerspectiveTransform(corners.astype(np.float32), target)


def cut_crop(frame_rgb: np.ndarray, homography: np.ndarray, box: CropBox) -> np.ndarray:
    """Warp one field's box straight out of the frame (RGB uint8, ``CANONICAL_PX_PER_MM``)."""
    scale = CANONICAL_PX_PER_MM
    shift = np.array([[1, 0, -box.x0 * scale], [0, 1, -box.y0 * scale], [0, 0, 1]], np.float64)
    size = (round((box.x1 - box.x0) * scale), round((box.y1 - box.y0) * scale))
    return cv2.warpPerspective(frame_rgb, shift @ homography, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def cut_field_crops(frame_rgb: np.ndarray) -> dict[str, np.ndarray] | None:
    """Locate the card and cut every field crop; None when no card is found."""
    corners = locate_card(frame_rgb)
    if corners is None:
        return None
    homography = card_homography(corners)
    return {name: cut_crop(frame_rgb, homography, box) for name, box in CROP_BOXES_MM.items()}
