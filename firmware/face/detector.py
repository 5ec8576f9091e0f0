"""Find faces and their landmarks: BlazeFace (box + 6 keypoints), refined by MTCNN's ONet (5 points).

Why two models: BlazeFace is fast and finds the face, but has no mouth corners and its keypoints are
5–12% of the eye distance off the points the embedding model was trained with; ONet on BlazeFace's crop
gives the classic 5 landmarks (eyes, nose, mouth corners), which measurably improves verification
(see docs/face.md). Keypoint order of BlazeFace: right eye, left eye (the subject's; right eye is on the
image's left), nose tip, mouth centre, right ear, left ear.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.face.runtime import TfliteModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    """One detected face in image pixels: box (x0, y0, x1, y1), detector score and landmarks.

    ``keypoints`` are BlazeFace's 6 points; ``landmarks5`` are eyes, nose, mouth corners (ONet) in the
    order of the ArcFace template (image-left eye first), or None when ONet was not run or failed.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray
    landmarks5: np.ndarray | None = None
    landmark_score: float = 0.0

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def eye_distance(self) -> float:
        points = self.landmarks5 if self.landmarks5 is not None else self.keypoints
        return float(np.linalg.norm(points[1] - points[0]))


def ssd_anchor_centres(input_size: int, strides: list[int], anchors_per_layer: int) -> np.ndarray:
    """Centres (x, y) in [0, 1] of BlazeFace's SSD anchors; layers sharing a stride share one grid."""
    centres = []
    layer = 0
    while layer < len(strides):
        repeats = 0
        stride = strides[layer]
        while layer < len(strides) and strides[layer] == stride:
            repeats += anchors_per_layer
            layer += 1
        cells = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


# (input size, strides, anchors per layer) of the two shipped BlazeFace variants
BLAZEFACE_LAYOUTS = {128: (128, [8, 16, 16, 16], 2), 192: (192, [4], 1)}


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Resize to a ``size``² square keeping aspect ratio; return (square, scale, pad_x, pad_y)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    square = np.zeros((size, size, 3), np.uint8)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    square[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return square, scale, pad_x, pad_y


def nms(boxes: np.ndarray, scores: np.ndarray, iou_limit: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = list(np.argsort(-scores))
    kept: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        best = order.pop(0)
        kept.append(int(best))
        rest = np.array(order, dtype=int)
        if rest.size == 0:
            break
        x0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / (areas[best] + areas[rest] - inter + 1e-9)
        order = [int(i) for i, o in zip(rest, iou, strict=True) if o < iou_limit]
    return kept


class BlazeFaceDetector:
    """BlazeFace short- or full-range: RGB uint8 image in, list of :class:`Face` (image pixels) out."""

    def __init__(self, model: TfliteModel, *, min_score: float = 0.6, iou_limit: float = 0.3):
        self.model = model
        self.size = model.input_shape[1]
        if self.size not in BLAZEFACE_LAYOUTS:
            raise ValueError(f"unknown BlazeFace input size {self.size}, known: {sorted(BLAZEFACE_LAYOUTS)}")
        self.anchors = ssd_anchor_centres(*BLAZEFACE_LAYOUTS[self.size])
        self.min_score = min_score
        self.iou_limit = iou_limit

    def detect(self, rgb: np.ndarray) -> list[Face]:
        square, scale, pad_x, pad_y = letterbox(rgb, self.size)
        tensor = (square.astype(np.float32) / 127.5 - 1.0)[None]
        out = self.model.run(tensor)
        regressors, logits = sorted(out.values(), key=lambda a: a.shape[-1], reverse=True)
        regressors, logits = regressors[0], logits[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        keep = np.nonzero(scores >= self.min_score)[0]
        if keep.size == 0:
            return []
        raw = regressors[keep] / self.size
        anchors = self.anchors[keep]
        cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
        w, h = raw[:, 2], raw[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        kept = nms(boxes, scores[keep], self.iou_limit)

        def to_image(xy: np.ndarray) -> np.ndarray:
            out_xy = xy * self.size
            out_xy[..., 0] = (out_xy[..., 0] - pad_x) / scale
            out_xy[..., 1] = (out_xy[..., 1] - pad_y) / scale
            return out_xy

        faces = []
        for i in kept:
            box = to_image(boxes[i].reshape(2, 2)).ravel()
            faces.append(Face(box=tuple(float(v) for v in box), score=float(scores[keep][i]),
                              keypoints=to_image(points[i]).astype(np.float32)))
        return faces


class OnetLandmarks:
    """MTCNN ONet: refines a face box into 5 landmarks (eyes, nose, mouth corners).

    ONet was trained on MTCNN's own square boxes (forehead to chin); BlazeFace's box is tighter, so the
    crop is squared and enlarged by ``box_scale`` first, then ONet's own box regression is applied and
    ONet is run a second time on that box, as MTCNN's last stage would see it.
    """

    def __init__(self, model: TfliteModel, *, box_scale: float = 1.15, passes: int = 2):
        self.model = model
        self.box_scale = box_scale
        self.passes = passes

    @staticmethod
    def crop(rgb: np.ndarray, box: np.ndarray, size: int = 48) -> np.ndarray:
        """Crop ``box`` (x0, y0, x1, y1; may leave the image: zero padding) resized to ``size``²."""
        x0, y0, x1, y1 = box
        sx, sy = size / (x1 - x0), size / (y1 - y0)
        matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float32)
        return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def _run(self, rgb: np.ndarray, box: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        crop = self.crop(rgb, box)
        tensor = ((crop.astype(np.float32) - 127.5) / 128.0).transpose(1, 0, 2)[None]
        out = self.model.run(tensor)
        prob = out["onet/prob1"][0, 1]
        regression = out["onet/conv6-2/conv6-2"][0]
        marks = out["onet/conv6-3/conv6-3"][0]
        w, h = box[2] - box[0], box[3] - box[1]
        points = np.stack([box[0] + marks[:5] * w, box[1] + marks[5:] * h], axis=1)
        refined = box + regression * np.array([w, h, w, h])
        return float(prob), points.astype(np.float32), refined

    def refine(self, rgb: np.ndarray, face: Face) -> Face:
        x0, y0, x1, y1 = face.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = max(x1 - x0, y1 - y0) * self.box_scale
        box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
        prob, points = 0.0, None
        for _ in range(self.passes):
            prob, points, refined = self._run(rgb, box)
            rcx, rcy = (refined[0] + refined[2]) / 2, (refined[1] + refined[3]) / 2
            rside = max(refined[2] - refined[0], refined[3] - refined[1])
            box = np.array([rcx - rside / 2, rcy - rside / 2, rcx + rside / 2, rcy + rside / 2], np.float32)
        return Face(box=face.box, score=face.score, keypoints=face.keypoints, landmarks5=points,
                    landmark_score=prob)
