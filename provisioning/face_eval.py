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
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from firmware.face.align import ALIGNED_SIZE, ARCFACE_4
from firmware.face.detector import Face
from firmware.face.embedder import FUSIONS, normalise
from firmware.face.pipeline import FacePipeline, NoFaceFound
from firmware.face.quality import Guidance, QualityLimits, guidance_for, measure
from firmware.face.session import DecisionRule
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


# ----------------------------------------------------------------------------- the kiosk's decision rule


@dataclass
class KioskProbe:
    """One simulated capture of one person, decided as the kiosk decides it.

    ``embeddings`` are the fused frames' embeddings (the good frames the rule picked), None when the
    capture never had enough good frames (a failure to acquire: the kiosk would still be waiting).
    """

    identity: int
    images: tuple[int, ...]
    embeddings: np.ndarray | None
    wrong_face_frames: int = 0


def split_identities(n: int, seed: int = 20261125) -> np.ndarray:
    """Boolean mask of the *calibration* identities (half, drawn with ``seed``); the rest is held out."""
    order = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, bool)
    mask[order[: n // 2]] = True
    return mask


def aligned_limits(limits: QualityLimits) -> QualityLimits:
    """The gates that can be measured on an already aligned 112² crop: pose (ONet on the crop), exposure
    and sharpness; size and centring describe a camera frame and do not apply."""
    return replace(limits, min_face_fraction=0.0, max_face_fraction=float("inf"), min_eye_distance_px=0.0,
                   max_centre_offset=float("inf"))


def aligned_guidance(pipeline: FacePipeline, rgb112: np.ndarray) -> Guidance:
    """Quality verdict of an aligned crop: ONet landmarks on the whole crop, then the applicable gates."""
    box = (0.0, 0.0, float(rgb112.shape[1]), float(rgb112.shape[0]))
    face = Face(box=box, score=1.0, keypoints=np.asarray(ARCFACE_4, np.float32))
    if pipeline.refiner is not None:
        face = pipeline.refiner.refine(rgb112, replace(face, box=(8.0, 0.0, 104.0, 112.0)))
        if face.landmark_score < pipeline.limits.min_landmark_score:
            return Guidance.NO_FACE
    quality = measure(rgb112.shape, face, rgb112)
    return guidance_for(quality, face, aligned_limits(pipeline.limits))


def kiosk_cards(pipeline: FacePipeline, data: Dataset, card_bytes: int = 4500):
    """(identity, image index, embedding or None) of every card-like reference, as in card_vs_live."""
    cards = []
    for i, files in enumerate(data.images):
        names = [p.stem.lower() for p in files]
        for k in ([names.index("neutral")] if "neutral" in names else range(len(files))):
            rgb = read_rgb(files[k])
            if data.aligned:
                grey = card_from_aligned(rgb, target_bytes=card_bytes)
                cards.append((i, k, pipeline.embed_aligned([np.repeat(grey[:, :, None], 3, axis=2)])[0]))
                continue
            faces = pipeline.find_faces(rgb)
            if not faces:
                cards.append((i, k, None))
                continue
            try:
                emb = pipeline.card_embedding(card_from_portrait(rgb, faces[0].box, target_bytes=card_bytes))[0]
            except NoFaceFound:
                emb = None
            cards.append((i, k, emb))
    return cards


def kiosk_probes(pipeline: FacePipeline, data: Dataset, rule: DecisionRule, *, sessions: int,
                 capture_frames: int = 10, seed: int = 0, scene=None,
                 progress: Callable[[str], None] = lambda s: None) -> list[KioskProbe]:
    """Captures decided by ``rule``: gate every frame as ``FaceSession.add_frame`` does, keep the good
    ones, fuse the ones ``rule.choose`` picks.

    Photo sets (London: one live photo per person): each session is ``capture_frames`` jittered frames
    of the live photo through ``pipeline.analyse_frame``. ``scene(rgb, identity, seed)`` may compose
    each frame into a scene first (the face-choice evaluation adds a bystander) and returns (frame,
    subject box) so that frames whose chosen face is not the subject are counted. Aligned sets: each
    session is ``rule.frames`` different good images of the person (gates: :func:`aligned_guidance`).
    """
    rng = np.random.default_rng(seed)
    probes: list[KioskProbe] = []
    for i, files in enumerate(data.images):
        live_idx = [k for k, p in enumerate(files) if p.stem.lower() != "neutral"]
        if data.aligned:
            crops = [read_rgb(files[k]) for k in live_idx]
            good = [k for k, crop in zip(live_idx, crops, strict=True)
                    if aligned_guidance(pipeline, crop) is Guidance.OK]
            embs = dict(zip(good, pipeline.embed_aligned([read_rgb(files[k]) for k in good]), strict=True)) \
                if good else {}
            seen = set()
            for _ in range(sessions * 4):
                if len(seen) >= sessions or len(good) < rule.frames:
                    break
                chosen = tuple(sorted(int(k) for k in rng.choice(good, rule.frames, replace=False)))
                if chosen in seen:
                    continue
                seen.add(chosen)
                probes.append(KioskProbe(i, chosen, np.stack([embs[k] for k in chosen])))
            if len(good) < rule.frames:
                probes.append(KioskProbe(i, tuple(live_idx), None))
            continue
        for k in live_idx:
            rgb = read_rgb(files[k])
            for s in range(sessions):
                frame_seed = (seed * 1_000_003 + i * 1009 + k * 101 + s) % 2**32
                good, wrong = [], 0
                for n, frame in enumerate(jitter_frames(rgb, capture_frames, seed=frame_seed)):
                    subject = None
                    if scene is not None:
                        frame, subject = scene(frame, i, frame_seed + n)
                    analysis = pipeline.analyse_frame(frame)
                    if DecisionRule.is_good(analysis):
                        good.append(analysis.aligned)
                        if subject is not None and not _inside(analysis.face, subject):
                            wrong += 1
                    elif analysis.aligned is not None:
                        analysis.aligned.fill(0)
                if len(good) < rule.frames:
                    probes.append(KioskProbe(i, (k,), None, wrong))
                    continue
                chosen = rule.choose(len(good))
                probes.append(KioskProbe(i, (k,), pipeline.embed_aligned([good[c] for c in chosen]), wrong))
        if progress and i % 25 == 24:
            progress(f"{data.root.name}: {i + 1}/{len(data.images)} identities captured")
    return probes


def _inside(face: Face, box) -> bool:
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def kiosk_scores(rule: DecisionRule, cards, probes: list[KioskProbe], identities: np.ndarray | None = None,
                 failures: dict | None = None) -> Scores:
    """Card × capture scores by ``rule`` among ``identities`` (mask; None = all), ids renumbered 0..m−1."""
    n_all = 1 + max(max(c[0] for c in cards), max(p.identity for p in probes))
    mask = np.ones(n_all, bool) if identities is None else identities
    index = -np.ones(n_all, int)
    index[np.nonzero(mask)[0]] = np.arange(int(mask.sum()))
    gen, gen_ids, imp, imp_ids = [], [], [], []
    for ci, ck, cemb in cards:
        if not mask[ci]:
            continue
        for probe in probes:
            if not mask[probe.identity] or (probe.identity == ci and ck in probe.images):
                continue
            score = FAILED if cemb is None or probe.embeddings is None else rule.score(cemb, probe.embeddings)
            if probe.identity == ci:
                gen.append(score)
                gen_ids.append(index[ci])
            else:
                imp.append(score)
                imp_ids.append((index[ci], index[probe.identity]))
    return _scores_from(gen, gen_ids, imp, imp_ids, int(mask.sum()), dict(failures or {}))


def kiosk_rule_evaluation(pipeline: FacePipeline, data: Dataset, rule: DecisionRule, *, sessions: int | None = None,
                          capture_frames: int = 10, split_seed: int = 20261125,
                          progress: Callable[[str], None] = lambda s: None) -> dict[str, Scores]:
    """Scores of the kiosk's rule on the calibration identities, the held-out ones, and all."""
    sessions = sessions or (12 if data.aligned else 2)
    cards = kiosk_cards(pipeline, data)
    probes = kiosk_probes(pipeline, data, rule, sessions=sessions, capture_frames=capture_frames,
                          progress=progress)
    failures = {"no_face_card": sum(c[2] is None for c in cards),
                "failed_to_acquire": sum(p.embeddings is None for p in probes), "captures": len(probes)}
    progress(f"{data.root.name}: {len(cards)} cards, {len(probes)} captures ({rule.name}), "
             f"{failures['failed_to_acquire']} without {rule.frames} good frames")
    calibration = split_identities(len(data.identities), split_seed)
    return {"calibration": kiosk_scores(rule, cards, probes, calibration, failures),
            "held_out": kiosk_scores(rule, cards, probes, ~calibration, failures),
            "all": kiosk_scores(rule, cards, probes, None, failures)}


def threshold_for(scores: Scores, far: float) -> tuple[float, bool]:
    """(threshold, measurable): the threshold at ``far``; when the impostors are too few to measure it,
    the highest impostor score (no false accept among them) and False."""
    from provisioning.face_metrics import threshold_at_far

    impostor = scores.impostor[scores.impostor > -1e8]
    threshold = threshold_at_far(impostor, far)
    if np.isnan(threshold):
        return float(impostor.max()), False
    return threshold, True


def choose_kiosk_threshold(per_folder: dict[str, dict[str, Scores]], far: float) -> tuple[float, list[dict]]:
    """The kiosk rule's threshold at ``far``, strictest over folders, and how each folder's was found.

    Per folder: the threshold at ``far`` on the *calibration* identities when they hold at least
    1/far impostor comparisons ("calibration"); otherwise that half cannot measure ``far`` — taking its
    highest impostor score would be a threshold whose FAR nobody measured (on London it let 4 of 5100
    held-out impostor comparisons through, 8× the target) — so all the folder's identities are used
    ("all identities: held-out check not independent"); with too few even then, the highest impostor
    score ("unmeasurable"). Stricter wins: the threshold must meet the FAR on every folder.
    """
    notes = []
    for name, sets in per_folder.items():
        cal_thr, cal_ok = threshold_for(sets["calibration"], far)
        if cal_ok:
            chosen, source = cal_thr, "calibration"
        else:
            all_thr, all_ok = threshold_for(sets["all"], far)
            chosen, source = all_thr, "all identities" if all_ok else "unmeasurable (highest impostor score)"
        notes.append({"data": name, "calibration_threshold": cal_thr, "calibration_measurable": cal_ok,
                      "threshold": chosen, "source": source,
                      "calibration_impostors": int(sets["calibration"].impostor.size)})
    return max(n["threshold"] for n in notes), notes


def machine() -> dict:
    """Where an evaluation ran (for bench/results)."""
    import datetime as dt
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"), "host_arch": platform.machine(),
            "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


# ----------------------------------------------------------------------------- face choice: a bystander in the frame


def _paste(canvas: np.ndarray, rgb: np.ndarray, box, face_px: float, centre_xy, crop_w: float, crop_h: float):
    """Scale ``rgb`` so that its face ``box`` is ``face_px`` wide and paste a crop_w×crop_h (in face
    widths) region around the face with the face centre at ``centre_xy``; returns the face box placed."""
    x0, y0, x1, y1 = box
    s = face_px / (x1 - x0)
    fcx, fcy = (x0 + x1) / 2 * s, (y0 + y1) / 2 * s
    big = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    h, w = canvas.shape[:2]
    half_w, up, down = crop_w * face_px / 2, 0.9 * face_px, (crop_h - 0.9) * face_px
    for yy in range(max(0, int(centre_xy[1] - up)), min(h, int(centre_xy[1] + down))):
        sy = int(yy - centre_xy[1] + fcy)
        if not 0 <= sy < big.shape[0]:
            continue
        xa, xb = max(0, int(centre_xy[0] - half_w)), min(w, int(centre_xy[0] + half_w))
        sxa, sxb = int(xa - centre_xy[0] + fcx), int(xb - centre_xy[0] + fcx)
        sxa2, sxb2 = max(0, sxa), min(big.shape[1], sxb)
        canvas[yy, xa + (sxa2 - sxa):xb - (sxb - sxb2)] = big[sy, sxa2:sxb2]
    cx, cy = centre_xy
    return (cx - face_px / 2, cy - face_px / 2 * (y1 - y0) / (x1 - x0), cx + face_px / 2,
            cy + face_px / 2 * (y1 - y0) / (x1 - x0))


def bystander_scene(pipeline: FacePipeline, data: Dataset, *, bystander_scale: float, offset: float = 0.27,
                    subject_px: float = 90.0, size=(640, 480)):
    """A scene builder for :func:`kiosk_probes`: the (jittered) live photo of the subject centred in a
    640×480 frame, face ``subject_px`` wide, and the live photo of the next identity (a bystander) at
    ``offset`` of the width to the right, ``bystander_scale`` × as wide. Returns (scene, subject box) and
    ``bystander_of`` (identity → the bystander's identity)."""
    live = {}
    for i, files in enumerate(data.images):
        path = next(p for p in files if p.stem.lower() != "neutral")
        rgb = read_rgb(path)
        faces = pipeline.find_faces(rgb)
        live[i] = (rgb, faces[0].box if faces else None)
    n = len(data.images)

    def bystander_of(i: int) -> int:
        return (i + 1) % n

    def build(frame: np.ndarray, identity: int, seed: int):
        w, h = size
        canvas = np.full((h, w, 3), 118, np.uint8)
        other_rgb, other_box = live[bystander_of(identity)]
        if other_box is not None:
            _paste(canvas, other_rgb, other_box, subject_px * bystander_scale, (w * (0.5 + offset), h * 0.45),
                   2.0, 2.4)
        _, box = live[identity]
        subject = _paste(canvas, frame, box, subject_px, (w * 0.5, h * 0.5), 1.6, 2.4)
        return canvas, subject

    return build, bystander_of


def face_choice_evaluation(pipelines: dict[str, FacePipeline], data: Dataset, rule: DecisionRule, threshold: float,
                           scales=(0.5, 2.0), progress: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Per face-choice rule and bystander size: captures using the bystander's face, the subject's own
    card refused (false rejects), the bystander's card accepted (false accepts caused by the wrong
    face), and captures stopped by ONE_PERSON / other gates (no decision)."""
    rows = []
    for choice, pipeline in pipelines.items():
        cards = {i: e for i, _, e in kiosk_cards(pipeline, data)}
        for scale in scales:
            build, bystander_of = bystander_scene(pipeline, data, bystander_scale=scale)
            probes = kiosk_probes(pipeline, data, rule, sessions=1, scene=build)
            decided = [p for p in probes if p.embeddings is not None]
            genuine = [(p, rule.score(cards[p.identity], p.embeddings)) for p in decided
                       if cards.get(p.identity) is not None]
            by_card = [rule.score(cards[bystander_of(p.identity)], p.embeddings) for p in decided
                       if cards.get(bystander_of(p.identity)) is not None]
            rejects = [p for p, s in genuine if s <= threshold]
            rows.append({"face_choice": choice, "bystander_scale": scale, "captures": len(probes),
                         "no_decision": len(probes) - len(decided),
                         "captures_with_wrong_face": sum(p.wrong_face_frames > 0 for p in decided),
                         "false_rejects": len(rejects),
                         "false_rejects_from_wrong_face": sum(p.wrong_face_frames > 0 for p in rejects),
                         "bystander_card_accepted": int(sum(s > threshold for s in by_card)),
                         "threshold": threshold})
            progress(f"face choice {choice}, bystander ×{scale}: {rows[-1]}")
    return rows
