"""Evaluation protocols for face verification on a folder of identities (one sub-folder per person).

Evaluation only: it reads data sets such as ../shared/data/faces, which the product never ships or
needs. Two protocols:

* ``all-pairs``: every image against every other; genuine = same folder.
* ``card-vs-live``: a card-like reference (greyscale, downscaled, JPEG 2000 at 3–6 KB, as the chip's
  photo) against colour "live" images of everyone. A folder with a ``neutral.*`` image uses it as the
  card (London set); otherwise every image in turn plays the card (aligned celebrity crops).
  Fusion: groups of N live images of one person are fused (mean embedding, best-of-N) — with one live
  image per person the N frames are simulated by small pose/scale/light jitter of that image.

Folders whose images are all 112×112 are taken as already aligned to the ArcFace template and skip
detection; others run the whole detect → landmarks → align pipeline.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from firmware.face.align import ALIGNED_SIZE
from firmware.face.embedder import FUSIONS, normalise
from firmware.face.pipeline import FacePipeline, NoFaceFound
from provisioning.face_metrics import Scores

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class DataMissing(FileNotFoundError):
    """The evaluation data folder does not exist or holds no identities."""


@dataclass
class Dataset:
    root: Path
    identities: list[str]
    images: list[list[Path]]
    aligned: bool

    @property
    def n_images(self) -> int:
        return sum(len(i) for i in self.images)


def load_dataset(root: Path) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise DataMissing(f"evaluation data {root} is not there (it lives in ../shared/data/faces, which "
                          "only evaluation needs; the product and its tests do not)")
    identities, images = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            identities.append(folder.name)
            images.append(files)
    if len(identities) < 2:
        raise DataMissing(f"{root} holds {len(identities)} identity folders with images; need at least 2")
    sample = [read_rgb(files[0]).shape[:2] for files in images[:3]]
    aligned = all(s == (ALIGNED_SIZE, ALIGNED_SIZE) for s in sample)
    return Dataset(root, identities, images, aligned)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).copy()


# ----------------------------------------------------------------------------- card-like photos


def jpeg2000_roundtrip(grey: np.ndarray, target_bytes: int) -> tuple[np.ndarray, int]:
    """Encode ``grey`` as JPEG 2000 close to (not above) ``target_bytes``; return decoded image and size."""
    img = Image.fromarray(grey, "L")
    lo, hi = 1.0, 400.0  # compression ratios
    best: bytes | None = None
    for _ in range(14):
        ratio = (lo * hi) ** 0.5
        buf = io.BytesIO()
        img.save(buf, "JPEG2000", quality_mode="rates", quality_layers=[ratio], irreversible=True)
        data = buf.getvalue()
        if len(data) <= target_bytes:
            best, hi = data, ratio
        else:
            lo = ratio
    if best is None:
        best = data
    with Image.open(io.BytesIO(best)) as decoded:
        return np.asarray(decoded.convert("L")).copy(), len(best)


def card_from_aligned(rgb112: np.ndarray, side_px: int = 100, target_bytes: int = 4000) -> np.ndarray:
    """An aligned crop made card-like: grey, ``side_px``², JPEG 2000 ≈ target size; back to 112² grey."""
    grey = cv2.cvtColor(rgb112, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (side_px, side_px), interpolation=cv2.INTER_AREA)
    decoded, _ = jpeg2000_roundtrip(small, target_bytes)
    return cv2.resize(decoded, (ALIGNED_SIZE, ALIGNED_SIZE), interpolation=cv2.INTER_CUBIC)


def card_from_portrait(rgb: np.ndarray, face_box, face_width_px: int = 90,
                       target_bytes: int = 5000) -> np.ndarray:
    """A portrait made card-like: 3:4 head-and-shoulders crop, face ``face_width_px`` wide, grey, JPEG 2000."""
    x0, y0, x1, y1 = face_box
    fw = x1 - x0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    width = fw / 0.55
    height = width * 4 / 3
    top = cy - height * 0.45
    scale = face_width_px / fw
    matrix = np.array([[scale, 0, -(cx - width / 2) * scale], [0, scale, -top * scale]], np.float32)
    out_w, out_h = int(round(width * scale)), int(round(height * scale))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    crop = cv2.warpAffine(grey, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    decoded, _ = jpeg2000_roundtrip(crop, target_bytes)
    return decoded


def jitter_frames(rgb: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """Simulated capture frames of one photo: small rotation, scale, shift and exposure changes."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    frames = []
    for _ in range(count):
        angle, scale = rng.uniform(-5, 5), rng.uniform(0.93, 1.07)
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        matrix[:, 2] += rng.uniform(-0.03, 0.03, 2) * (w, h)
        frame = cv2.warpAffine(rgb, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        frame = frame * rng.uniform(0.85, 1.15) + rng.normal(0, 3, frame.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


# ----------------------------------------------------------------------------- backends


class Backend:
    """One verification system under test: embeddings for aligned crops, photos and card photos."""

    name: str

    def embed_aligned(self, rgb112: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def embed_photo(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple] | None:
        """(embedding, face box) of the largest face, or None when no face is found."""
        raise NotImplementedError

    def similarity(self, refs: np.ndarray, probes: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fuse(self, embeddings: np.ndarray, how: str) -> np.ndarray:
        raise NotImplementedError


class TfliteBackend(Backend):
    """The kiosk's own pipeline (the embedding model the manifest names)."""

    def __init__(self, pipeline: FacePipeline):
        self.pipeline = pipeline
        self.name = pipeline.embedding_entry.name

    def embed_aligned(self, rgb112):
        return self.pipeline.embed_aligned([rgb112])[0]

    def embed_photo(self, rgb):
        faces = self.pipeline.find_faces(rgb)
        if not faces:
            return None
        return self.pipeline.embed_aligned([self.pipeline.align(rgb, faces[0])])[0], faces[0].box

    def embed_card(self, grey):
        try:
            return self.pipeline.card_embedding(grey)[0]
        except NoFaceFound:
            return None

    def similarity(self, refs, probes):
        return normalise(refs) @ normalise(probes).T

    def fuse(self, embeddings, how):
        return embeddings


class DlibBackend(Backend):
    """dlib HOG detector + 5-point shape + ResNet descriptor (face-recognition-models, CC0): the peer."""

    name = "dlib-resnet"

    def __init__(self):
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as exc:
            raise DataMissing("the dlib baseline needs the bench extra: pip install dlib-bin==20.0.1.post1 "
                              f"face-recognition-models==0.3.0 ({exc})") from None
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def _descriptor(self, rgb, rect):
        shape = self.shape(rgb, rect)
        return np.array(self.net.compute_face_descriptor(rgb, shape), np.float32)

    def embed_aligned(self, rgb112):
        h, w = rgb112.shape[:2]
        return self._descriptor(np.ascontiguousarray(rgb112), self.dlib.rectangle(8, 12, w - 8, h - 4))

    def embed_photo(self, rgb):
        rgb = np.ascontiguousarray(rgb)
        upsample = 1 if max(rgb.shape[:2]) < 400 else 0
        rects = sorted(self.detector(rgb, upsample), key=lambda r: r.width(), reverse=True)
        if not rects:
            return None
        r = rects[0]
        return self._descriptor(rgb, r), (r.left(), r.top(), r.right(), r.bottom())

    def embed_card(self, grey):
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        if max(rgb.shape[:2]) < 320:
            rgb = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        found = self.embed_photo(rgb)
        return None if found is None else found[0]

    def similarity(self, refs, probes):
        diff = refs[:, None, :] - probes[None, :, :]
        return -np.linalg.norm(diff, axis=2)  # dlib compares by euclidean distance (0.6 = its default)

    def fuse(self, embeddings, how):
        return embeddings


# ----------------------------------------------------------------------------- protocols


def _embed_all(backend: Backend, data: Dataset, progress: Callable[[str], None]):
    """Embeddings (or None) and face boxes for every image, in dataset order."""
    out, boxes = [], []
    for files in data.images:
        row, row_boxes = [], []
        for path in files:
            rgb = read_rgb(path)
            if data.aligned:
                row.append(backend.embed_aligned(rgb))
                row_boxes.append(None)
            else:
                found = backend.embed_photo(rgb)
                row.append(None if found is None else found[0])
                row_boxes.append(None if found is None else found[1])
        out.append(row)
        boxes.append(row_boxes)
    progress(f"{backend.name}: embedded {data.n_images} images")
    return out, boxes


def _scores_from(pairs_g, ids_g, pairs_i, ids_i, n_ids, failures) -> Scores:
    return Scores(np.array(pairs_g, np.float64), np.array(ids_g, int), np.array(pairs_i, np.float64),
                  np.array(ids_i, int).reshape(-1, 2), n_ids, failures)


FAILED = -1e9  # score of a comparison whose face was not found: always rejected


def all_pairs(backend: Backend, data: Dataset, progress=lambda s: None) -> Scores:
    embeddings, _ = _embed_all(backend, data, progress)
    flat = [(i, e) for i, row in enumerate(embeddings) for e in row]
    ids = np.array([i for i, _ in flat])
    missing = np.array([e is None for _, e in flat])
    dim = next(e for _, e in flat if e is not None).shape[0]
    matrix = np.stack([np.zeros(dim, np.float32) if e is None else e for _, e in flat])
    sim = backend.similarity(matrix, matrix)
    sim[missing, :] = FAILED
    sim[:, missing] = FAILED
    iu, ju = np.triu_indices(len(flat), k=1)
    same = ids[iu] == ids[ju]
    return _scores_from(sim[iu, ju][same], ids[iu][same], sim[iu, ju][~same],
                        np.stack([ids[iu][~same], ids[ju][~same]], 1), len(data.identities),
                        {"no_face": int(missing.sum())})


def card_vs_live(backend, data: Dataset, *, frames: int = 1, progress=lambda s: None,
                 card_bytes: int = 4500, seed: int = 0) -> dict[str, Scores]:
    """Scores for single frames and, when ``frames`` > 1, for mean and best-of-``frames`` fusion."""
    live, boxes = _embed_all(backend, data, progress)
    n_ids = len(data.identities)
    cards: list[tuple[int, int, np.ndarray | None]] = []  # (identity, image index, embedding)
    for i, files in enumerate(data.images):
        names = [p.stem.lower() for p in files]
        card_indices = [names.index("neutral")] if "neutral" in names else range(len(files))
        for k in card_indices:
            rgb = read_rgb(files[k])
            if data.aligned:
                emb = backend.embed_aligned(np.repeat(card_from_aligned(rgb, target_bytes=card_bytes)[:, :, None],
                                                      3, axis=2))
            elif boxes[i][k] is None:
                emb = None
            else:
                emb = backend.embed_card(card_from_portrait(rgb, boxes[i][k], target_bytes=card_bytes))
            cards.append((i, k, emb))
    progress(f"{backend.name}: {len(cards)} card-like references")
    failures = {"no_face_card": sum(e is None for *_, e in cards),
                "no_face_live": sum(e is None for row in live for e in row)}

    # probe groups: (identity, image indices used, embeddings)
    rng = np.random.default_rng(seed)
    uses_neutral = [any(p.stem.lower() == "neutral" for p in files) for files in data.images]
    singles = [(i, (k,), [e]) for i, row in enumerate(live) for k, e in enumerate(row)
               if not (uses_neutral[i] and data.images[i][k].stem.lower() == "neutral")]
    groups = []
    if frames > 1:
        for i, files in enumerate(data.images):
            names = [p.stem.lower() for p in files]
            live_idx = [k for k in range(len(files)) if names[k] != "neutral"]
            if len(live_idx) >= frames + 1:
                order = list(rng.permutation(live_idx))
                for g in range(len(order) // frames):
                    chosen = tuple(order[g * frames:(g + 1) * frames])
                    groups.append((i, chosen, [live[i][k] for k in chosen]))
            else:  # one live photo: simulated frames by jitter
                for k in live_idx:
                    sims = jitter_frames(read_rgb(files[k]), frames, seed=hash((i, k)) % 2**32)
                    embs = [(backend.embed_photo(f) or (None,))[0] for f in sims]
                    groups.append((i, (k,), embs))
        progress(f"{backend.name}: {len(groups)} probe groups of {frames} frames")

    result = {"single": _compare(backend, cards, singles, n_ids, failures, "single")}
    if groups:
        for how in FUSIONS:
            result[f"{how}-of-{frames}"] = _compare(backend, cards, groups, n_ids, failures, how)
    return result


def _compare(backend, cards, probes, n_ids, failures, how) -> Scores:
    gen, gen_ids, imp, imp_ids = [], [], [], []
    for ci, ck, cemb in cards:
        for pi, pks, pembs in probes:
            if pi == ci and ck in pks:
                continue  # the card image itself is not a live probe
            valid = [e for e in pembs if e is not None]
            if cemb is None or not valid:
                score = FAILED
            else:
                sims = backend.similarity(cemb[None], np.stack(valid))[0]
                if how == "mean" and isinstance(backend, TfliteBackend):
                    score = float(backend.similarity(cemb[None], normalise(np.mean(normalise(np.stack(valid)),
                                                                                  0))[None])[0, 0])
                elif how == "mean":
                    score = float(backend.similarity(cemb[None], np.mean(np.stack(valid), 0)[None])[0, 0])
                else:
                    score = float(np.max(sims))
            if pi == ci:
                gen.append(score)
                gen_ids.append(ci)
            else:
                imp.append(score)
                imp_ids.append((ci, pi))
    return _scores_from(gen, gen_ids, imp, imp_ids, n_ids, failures)


def identity_groups(data: Dataset) -> dict[str, list[int]] | None:
    """Demographic groups from a ``*_info.csv`` beside the identity folders (London set: ``face_eth``)."""
    import csv

    for info in sorted(data.root.glob("*_info.csv")):
        with open(info, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        column = next((c for c in ("face_eth", "ethnicity") if rows and c in rows[0]), None)
        if column is None:
            continue
        id_column = next(iter(rows[0]))
        index = {name: i for i, name in enumerate(data.identities)}
        groups: dict[str, list[int]] = {}
        for row in rows:
            if row[id_column] in index:
                groups.setdefault(row[column], []).append(index[row[id_column]])
        return groups
    return None


def group_breakdown(scores: Scores, groups: dict[str, list[int]], threshold: float) -> dict[str, dict]:
    """Per group at one threshold: genuine accept rate, and false accepts among impostor pairs *within*
    the group (look-alike pairs are where demographic differentials show, NISTIR 8280)."""
    out = {}
    for name, members in sorted(groups.items()):
        member = np.zeros(scores.n_identities, bool)
        member[members] = True
        g = scores.genuine[member[scores.genuine_ids]]
        within = member[scores.impostor_ids[:, 0]] & member[scores.impostor_ids[:, 1]]
        imp = scores.impostor[within]
        out[name] = {"identities": len(members), "genuine": int(g.size), "tar": float(np.mean(g > threshold))
                     if g.size else None, "within_group_impostors": int(imp.size),
                     "within_group_false_accepts": int(np.sum(imp > threshold)),
                     "within_group_max_impostor": float(imp.max()) if imp.size else None}
    return out
