"""A synthetic person's face, drawn from a seed, frontal or turned, eyes open or shut.

Why a renderer of our own: the simulated kiosk needs the card holder's *live* face (the same person
as the card photo, from the same seed), other people who do not match, and a head that really blinks
and turns, with no real person's image anywhere. The face is a 2.5-D model in eye-distance units:
a head ellipsoid, eyes, brows, a nose and a mouth placed in 3-D (x right, y down, z towards the
camera, origin between the eyes), rotated about a vertical axis through the neck and projected
orthographically, so that turning moves the nose tip across the eyes as a real head does. Skin is
shaded (Lambert, one light plus ambient) with low-frequency mottling and pore-scale grain; the eye
opening is bounded by real lids that come down for a blink.

Identity lives in :class:`FaceParams` (shape, proportions, colours, hair), drawn from a seed with
wide ranges so that different seeds are different people to a face embedder. It is an
approximation: ears, hair strands, teeth and the far cheek's occlusion are crude.

This module never imports ``firmware`` (hal is below it): the blink and turn are rendered here,
from the model, instead of being painted onto a photo as ``firmware.face.liveness_sim`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Where the neck's vertical rotation axis lies, in eye distances behind the eyes.
NECK_AXIS_Z = -1.1


@dataclass(frozen=True)
class FaceParams:
    """One synthetic identity. Lengths are in eye distances (IOD), colours RGB 0..255."""

    seed: int
    head_w: float          # half-width of the head at the cheekbones
    head_h: float          # half-height from the head's centre
    head_cy: float         # head centre below the eyes
    jaw: float             # 0 round … 0.45 narrow chin
    eye_w: float           # half-width of the eye opening
    eye_h: float           # half-height of the opening
    eye_tilt: float        # outer corners up (+) or down, in IOD
    iris_r: float
    brow_y: float          # above the eye centre
    brow_thick: float
    brow_arch: float
    brow_len: float
    nose_len: float        # eyes to nose tip, downwards
    nose_w: float          # half-width of the nostrils
    nose_depth: float      # tip in front of the eyes
    mouth_y: float
    mouth_w: float         # half-width
    lip_upper: float
    lip_lower: float
    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    iris: tuple[float, float, float]
    hair: tuple[float, float, float]
    hairline: float        # hair front edge above the eyes
    hair_volume: float     # hair beyond the skull
    hair_long: bool
    parting: float         # −1 … 1: where the fringe parts
    beard: float           # 0 none … 1 dark stubble
    background: tuple[float, float, float]
    clothes: tuple[float, float, float]
    light: tuple[float, float, float]
    warp: float = 0.0          # amplitude of the identity's smooth shape warp (IOD)
    albedo_var: float = 0.0    # amplitude of the identity's skin-tone pattern

    @classmethod
    def from_seed(cls, seed: int) -> FaceParams:
        rng = np.random.default_rng([0x5F_ACE, int(seed)])
        u = rng.uniform
        tone = u(0, 1)  # light … dark skin
        skin = np.array([232, 190, 160]) * (1 - 0.55 * tone) + np.array([10, 5, 0]) * tone
        skin = skin * u(0.92, 1.06, 3)
        hair_dark = u(0, 1)
        hair = (np.array([25, 20, 18]) if hair_dark < 0.6
                else np.array([u(60, 150), u(40, 100), u(20, 60)]) if hair_dark < 0.9
                else np.full(3, u(120, 190)))  # grey
        lx, ly = u(-0.6, 0.6), u(-0.7, -0.2)
        light = np.array([lx, ly, 1.0])
        light /= np.linalg.norm(light)
        return cls(
            seed=int(seed),
            head_w=u(0.95, 1.45), head_h=u(1.55, 1.95), head_cy=u(0.2, 0.45), jaw=u(0.0, 0.5),
            eye_w=u(0.16, 0.29), eye_h=u(0.055, 0.13), eye_tilt=u(-0.06, 0.08), iris_r=u(0.08, 0.115),
            brow_y=u(0.18, 0.42), brow_thick=u(0.03, 0.13), brow_arch=u(0.0, 0.15), brow_len=u(0.25, 0.45),
            nose_len=u(0.5, 0.85), nose_w=u(0.13, 0.3), nose_depth=u(0.38, 0.55),
            mouth_y=u(0.95, 1.35), mouth_w=u(0.24, 0.46), lip_upper=u(0.03, 0.1), lip_lower=u(0.05, 0.14),
            skin=tuple(float(v) for v in np.clip(skin, 0, 255)),
            lips=tuple(float(v) for v in np.clip(skin * np.array([0.85, 0.6, 0.62]) * u(0.85, 1.05), 0, 255)),
            iris=tuple(float(v) for v in (np.array([60, 35, 20]) * u(0.4, 1.6) if u() < 0.85
                                          else np.array([70, 100, 130]) * u(0.7, 1.2))),
            hair=tuple(float(v) for v in hair),
            hairline=u(0.75, 1.15), hair_volume=u(0.06, 0.3), hair_long=bool(u() < 0.4),
            parting=u(-1, 1), beard=u(0, 1) if u() < 0.25 else 0.0,
            background=tuple(float(v) for v in u(150, 230, 3)),
            clothes=tuple(float(v) for v in u(20, 200, 3)),
            light=tuple(float(v) for v in light),
            warp=u(0.08, 0.14), albedo_var=u(0.08, 0.15),
        )


@dataclass(frozen=True)
class Rendered:
    """A rendered frame and where the face's landmarks are (image pixels, ArcFace 5-point order:
    the subject's right eye (image left), left eye, nose tip, right and left mouth corners)."""

    rgb: np.ndarray
    landmarks: np.ndarray
    box: tuple[float, float, float, float]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> np.ndarray:
    """Zero-mean, unit-ish noise varying over ``cell_px`` pixels."""
    h, w = shape
    small = rng.normal(0, 1, (max(2, int(h / cell_px) + 2), max(2, int(w / cell_px) + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _identity_field(seed: int, salt: int, x: np.ndarray, y: np.ndarray, cycles: tuple[float, float],
                    terms: int = 8) -> np.ndarray:
    """A smooth random field of head coordinates (IOD), fixed by the identity: the same on the card
    photo and in every live frame whatever the scale, unlike pixel-seeded noise."""
    rng = np.random.default_rng([0x1D, int(seed), salt])
    out = np.zeros_like(x)
    for _ in range(terms):
        freq = rng.uniform(*cycles) * 2 * math.pi
        angle = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        out += np.cos(freq * (x * math.cos(angle) + y * math.sin(angle)) + phase).astype(np.float32)
    return out / math.sqrt(terms / 2)


def _soft(mask_distance: np.ndarray, width: float) -> np.ndarray:
    """0..1 coverage from a signed distance (negative inside), anti-aliased over ``width`` pixels."""
    return np.clip(0.5 - mask_distance / max(width, 1e-3), 0, 1).astype(np.float32)


def render_face(params: FaceParams, size: tuple[int, int] = (640, 480), *, centre: tuple[float, float] | None = None,
                iod_px: float = 66.0, yaw_deg: float = 0.0, eye_closure: float = 0.0) -> Rendered:
    """Draw the person in a frame of ``size`` (width, height), eyes' midpoint at ``centre``.

    ``yaw_deg`` positive = turned to the person's own left (unmirrored camera: the nose moves to the
    image right); ``eye_closure`` 0 open … 1 shut. The same arguments give the same pixels (the skin's
    texture is seeded by the identity and scale, not by the call).
    """
    p = params
    w, h = size
    cx, cy = centre if centre is not None else (w / 2, h * 0.42)
    s = float(iod_px)
    th = math.radians(yaw_deg)
    cos_t, sin_t = math.cos(th), math.sin(th)
    tex = np.random.default_rng([p.seed, int(s * 10), w, h])

    def project(x: float, y: float, z: float) -> tuple[float, float]:
        """Head coordinates (IOD) → image pixels after the yaw about the neck axis."""
        xr = x * cos_t + (z - NECK_AXIS_Z) * sin_t
        return cx + s * xr, cy + s * y

    # ---- background: a wall, lit from above (whole frame); the person is drawn in a window round them
    full_y = np.arange(h, dtype=np.float32)[:, None]
    wall = np.array(p.background, np.float32)[None, None, :] * (1.05 - 0.15 * full_y / h)[..., None]
    wall = wall + 4 * _smooth_noise(tex, (h, w), 40)[..., None]
    x0, x1 = max(0, int(cx - 3.2 * s)), min(w, int(cx + 3.2 * s) + 1)
    y0, y1 = max(0, int(cy - 2.6 * s)), h
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    h, w = ys.shape
    # the identity's own irregularity: a smooth warp of the whole head (no two faces share a shape)
    head_x = (xs - (cx - s * NECK_AXIS_Z * sin_t)) / s
    head_y = (ys - cy) / s
    warp = p.warp * s
    xs = xs + warp * _identity_field(p.seed, 1, head_x, head_y, (0.25, 0.9))
    ys = ys + warp * _identity_field(p.seed, 2, head_x, head_y, (0.25, 0.9))
    identity_albedo = 1 + p.albedo_var * _identity_field(p.seed, 3, head_x, head_y, (0.6, 2.5))
    img = wall[y0:y1, x0:x1].copy()

    light = np.array(p.light, np.float32)

    def paint(coverage: np.ndarray, colour) -> None:
        nonlocal img
        c = coverage[..., None]
        img = img * (1 - c) + np.asarray(colour, np.float32) * c

    # ---- shoulders and clothes (they turn only a little with the head)
    sh_cx = cx + 0.25 * s * sin_t
    sh_top = cy + s * (p.head_cy + p.head_h * 0.95)
    d = np.sqrt(((xs - sh_cx) / (2.3 * s)) ** 2 + ((ys - (sh_top + 2.2 * s)) / (2.2 * s)) ** 2) - 1
    cloth = np.array(p.clothes, np.float32)
    paint(_soft(d * 2.2 * s, 1.5), cloth)
    img -= (_soft(d * 2.2 * s, 1.5) * 10 * _smooth_noise(tex, (h, w), 25))[..., None]

    # ---- long hair behind the head
    hx, hy = project(0, p.head_cy, -0.9)
    if p.hair_long:
        d = np.maximum(np.abs(xs - hx) / (s * (p.head_w + p.hair_volume + 0.15)),
                       (ys - (hy - p.head_h * s)) / (s * (p.head_h * 2.2)) * 1.0) - 1
        d = np.where(ys < hy, np.sqrt(((xs - hx) / (s * (p.head_w + p.hair_volume + 0.15))) ** 2
                                      + ((ys - hy) / (s * (p.head_h + p.hair_volume))) ** 2) - 1, d)
        paint(_soft(d * s, 2.0), np.array(p.hair, np.float32) * 0.8)

    # ---- neck
    skin = np.array(p.skin, np.float32)
    nx_c = cx + 0.1 * s * sin_t
    neck = np.maximum(np.abs(xs - nx_c) / (0.62 * s), -(ys - (cy + s * p.head_cy)) / s) - 1
    neck = np.where(ys > sh_top + 0.6 * s, 1.0, neck)
    paint(_soft(neck * 0.62 * s, 1.5), skin * 0.72)

    # ---- ears (behind the face outline: painted first)
    for side in (-1, 1):
        ex, ey = project(side * (p.head_w * 0.95), 0.25, -0.75)
        visible = 1.0 - max(0.0, side * -sin_t) * 1.5  # the near-side ear shows more
        if visible <= 0.1:
            continue
        d = np.sqrt(((xs - ex) / (0.16 * s * max(0.2, visible))) ** 2 + ((ys - ey) / (0.32 * s)) ** 2) - 1
        paint(_soft(d * 0.16 * s, 1.5), skin * 0.85)

    # ---- the face: a head ellipsoid seen from the front, narrowing to the chin
    hcx, hcy = project(0, p.head_cy, -0.75)
    aw, ah = p.head_w * s, p.head_h * s
    v = (ys - hcy) / ah
    narrowing = 1 - p.jaw * np.clip(v, 0, 1) ** 2
    u = (xs - hcx) / (aw * narrowing)
    r2 = u ** 2 + v ** 2
    face_cov = _soft((np.sqrt(r2) - 1) * min(aw, ah), 1.5)
    nz = np.sqrt(np.clip(1 - r2, 0.0, 1))
    normal = np.stack([u, v * 0.85, nz + 0.15], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-6
    lambert = np.clip(normal @ light, 0, 1)
    shade = 0.42 + 0.62 * lambert
    mottle = 1 + 0.035 * _smooth_noise(tex, (h, w), 0.25 * s) + 0.02 * _smooth_noise(tex, (h, w), 0.07 * s)
    pores = tex.normal(0, 1, (h, w)).astype(np.float32)
    pores = cv2.GaussianBlur(pores, (0, 0), 0.6) * 2.5
    albedo = skin[None, None, :] * (mottle * identity_albedo)[..., None] + pores[..., None]
    # warm cheeks
    for side in (-1, 1):
        kx, ky = project(side * 0.55, 0.55, -0.05)
        blush = np.exp(-(((xs - kx) / (0.3 * s)) ** 2 + ((ys - ky) / (0.22 * s)) ** 2))
        albedo *= (1 - 0.06 * blush[..., None] * np.array([0, 1, 1], np.float32))
    face_rgb = albedo * shade[..., None]
    paint(face_cov, 0)  # composited below with per-pixel colour
    img += face_rgb * face_cov[..., None]

    def darken(amount: np.ndarray) -> None:
        nonlocal img
        img *= (1 - np.clip(amount, 0, 0.95))[..., None]

    # ---- eye sockets, under-brow shadow
    eyes_px = []
    for side in (-1, 1):
        ex, ey = project(side * 0.5, 0.0, 0.0)
        eyes_px.append((ex, ey))
        socket = np.exp(-(((xs - ex) / (0.36 * s)) ** 2 + ((ys - ey + 0.03 * s) / (0.2 * s)) ** 2))
        darken(0.16 * socket * face_cov)

    # ---- beard / stubble
    if p.beard > 0:
        mx, my = project(0, p.mouth_y + 0.1, 0.2)
        beard = np.exp(-(((xs - mx) / (0.75 * s)) ** 2 + ((ys - my) / (0.55 * s)) ** 2))
        beard = beard * (ys > my - 0.35 * s) * face_cov
        grain = np.clip(0.6 + 0.6 * tex.normal(0, 1, (h, w)).astype(np.float32), 0, 1)
        darken(0.45 * p.beard * beard * grain)

    # ---- nose: side shadow, ridge highlight, tip, nostrils, shadow under the tip
    tip_x, tip_y = project(0, p.nose_len, p.nose_depth)
    root_x, root_y = project(0, 0.1, 0.12)
    side_shadow = 1 if light[0] > 0 else -1  # shadow on the side away from the light
    t = np.clip((ys - root_y) / max(tip_y - root_y, 1), 0, 1)
    ridge_x = root_x + (tip_x - root_x) * t
    ridge_half = (0.07 + 0.12 * t) * s
    along = (ys > root_y) & (ys < tip_y + 0.05 * s)
    shadow_x = ridge_x - side_shadow * (ridge_half + 0.04 * s) + 0.15 * s * sin_t * (-side_shadow)
    darken(0.22 * along * np.exp(-((xs - shadow_x) / (0.07 * s)) ** 2) * face_cov)
    # the far side of a turned nose goes into shadow, the near side catches light
    if abs(sin_t) > 0.02:
        far = ridge_x - math.copysign(1, sin_t) * ridge_half * 0.6
        darken(0.35 * abs(sin_t) * along * np.exp(-((xs - far) / (0.06 * s)) ** 2) * face_cov)
    img += (18 * along * np.exp(-((xs - ridge_x) / (0.035 * s)) ** 2) * face_cov)[..., None]
    tipb = np.exp(-(((xs - tip_x) / (0.14 * s)) ** 2 + ((ys - tip_y) / (0.1 * s)) ** 2))
    img += (14 * tipb * face_cov)[..., None]
    under = np.exp(-(((xs - tip_x) / (0.22 * s)) ** 2 + ((ys - tip_y - 0.13 * s) / (0.06 * s)) ** 2))
    darken(0.28 * under * face_cov)
    for side in (-1, 1):
        nx_, ny_ = project(side * p.nose_w * 0.55, p.nose_len + 0.06, p.nose_depth - 0.15)
        nostril = np.sqrt(((xs - nx_) / (0.075 * s * max(cos_t, 0.3))) ** 2 + ((ys - ny_) / (0.04 * s)) ** 2) - 1
        darken(0.55 * _soft(nostril * 0.04 * s, 1.2))
        ax_, ay_ = project(side * p.nose_w, p.nose_len - 0.02, p.nose_depth - 0.25)
        ala = np.exp(-(((xs - ax_) / (0.05 * s)) ** 2 + ((ys - ay_) / (0.09 * s)) ** 2))
        darken(0.2 * ala * face_cov)

    # ---- mouth
    mz = 0.28
    mcx, mcy = project(0, p.mouth_y, mz)
    mw = p.mouth_w * s * (0.55 + 0.45 * cos_t)
    mu = (xs - mcx) / mw
    inside = np.clip(1 - mu ** 2, 0, 1)
    upper_top = mcy - p.lip_upper * s * np.sqrt(inside) * (1 + 0.25 * np.cos(mu * 6) * (np.abs(mu) < 0.5))
    lower_bot = mcy + p.lip_lower * s * np.sqrt(inside)
    lip_d = np.maximum(upper_top - ys, ys - lower_bot)
    lip_cov = _soft(lip_d, 1.2) * (np.abs(mu) < 1)
    lip_col = np.array(p.lips, np.float32)[None, None, :] * (0.55 + 0.5 * lambert)[..., None]
    img = img * (1 - lip_cov[..., None]) + lip_col * lip_cov[..., None]
    seam = np.exp(-((ys - mcy - 0.01 * s) / (0.012 * s + 0.6)) ** 2) * (np.abs(mu) < 1.02)
    darken(0.5 * seam * np.clip(1.4 - np.abs(mu), 0, 1))
    below = np.exp(-(((xs - mcx) / (0.25 * s)) ** 2 + ((ys - lower_bot.max() - 0.08 * s) / (0.05 * s)) ** 2))
    darken(0.12 * below * face_cov)

    # ---- eyes: opening between lids; sclera, iris, pupil, glint; lash line; crease; brows
    closure = float(np.clip(eye_closure, 0, 1))
    hair_col = np.array(p.hair, np.float32)
    for index, side in enumerate((-1, 1)):
        ex, ey = eyes_px[index]
        half_w = p.eye_w * s * (0.55 + 0.45 * cos_t) * (1 - 0.35 * max(0.0, -side * sin_t))
        du = (xs - ex) / max(half_w, 1)
        span = np.clip(1 - du ** 2, 0, 1)
        tilt = side * p.eye_tilt * s * du  # outer corner up
        top = ey - tilt - p.eye_h * s * span ** 0.6
        bottom = ey - tilt + p.eye_h * s * 0.75 * span ** 0.8
        lid = top + (bottom - top) * closure
        opening = np.maximum(lid - ys, ys - bottom)
        open_cov = _soft(opening, 1.0) * (np.abs(du) < 1)
        sclera = np.array([228, 224, 218], np.float32) * (0.8 + 0.2 * (1 - du ** 2))[..., None]
        iris_x = ex + 0.02 * s * sin_t
        r = np.sqrt((xs - iris_x) ** 2 + (ys - ey) ** 2)
        iris_r = p.iris_r * s
        iris_cov = _soft(r - iris_r, 1.0)
        rings = 1 + 0.18 * np.sin(np.arctan2(ys - ey, xs - iris_x) * 14 + p.seed)
        iris_col = np.array(p.iris, np.float32)[None, None, :] * (0.7 + 0.3 * r / max(iris_r, 1) * rings)[..., None]
        eye_rgb = sclera * (1 - iris_cov[..., None]) + iris_col * iris_cov[..., None]
        pupil = _soft(r - 0.42 * iris_r, 1.0)
        eye_rgb *= (1 - 0.85 * pupil)[..., None]
        glint = np.exp(-(((xs - iris_x - 0.3 * iris_r) ** 2 + (ys - ey + 0.35 * iris_r) ** 2) / (0.12 * iris_r) ** 2))
        eye_rgb += (200 * glint)[..., None]
        eye_rgb *= (0.75 + 0.25 * np.clip((ys - lid) / (0.04 * s + 1), 0, 1))[..., None]  # lid's shadow
        img = img * (1 - open_cov[..., None]) + eye_rgb * open_cov[..., None]
        # lash line at the upper lid's edge, and along the lower edge (fainter)
        lash = np.exp(-((ys - lid) / (0.018 * s + 0.7)) ** 2) * (np.abs(du) < 1.08)
        darken(0.7 * lash * (0.5 + 0.5 * span))
        low = np.exp(-((ys - bottom) / (0.012 * s + 0.6)) ** 2) * (np.abs(du) < 1)
        darken(0.25 * low)
        crease_y = top - 0.07 * s
        crease = np.exp(-((ys - crease_y) / (0.015 * s + 0.6)) ** 2) * (np.abs(du) < 0.95)
        darken(0.18 * crease * span)
        # brow
        bx, by = project(side * 0.52, -p.brow_y, 0.1)
        bu = (xs - bx) / (p.brow_len * s * (0.55 + 0.45 * cos_t))
        centre_y = by - p.brow_arch * s * (1 - (bu - 0.15 * side) ** 2) + side * 0.04 * s * bu
        thick = p.brow_thick * s * (1 - 0.5 * np.clip(side * bu, 0, 1))
        brow_d = np.maximum(np.abs(ys - centre_y) - thick / 2, (np.abs(bu) - 1) * p.brow_len * s)
        strands = np.clip(0.65 + 0.5 * _smooth_noise(tex, (h, w), 1.5), 0, 1)
        cov = _soft(brow_d, 1.5) * strands * 0.9
        img = img * (1 - cov[..., None]) + (hair_col * 0.9)[None, None, :] * cov[..., None]

    # ---- hair on top: the skull's upper part above the hairline, with a parted fringe
    hx, hy = project(0, p.head_cy, -0.75)
    hv = (ys - hy) / (ah + p.hair_volume * s)
    hu = (xs - hx) / (aw + p.hair_volume * s)
    outline = np.sqrt(hu ** 2 + hv ** 2) - 1
    part_x, _ = project(p.parting * 0.4, -p.hairline, 0.3)
    fringe = -p.hairline * s + cy + 0.25 * s * np.abs((xs - part_x) / s) ** 1.5
    hairline_y = np.minimum(fringe, hy)
    hair_region = _soft(outline * min(aw, ah), 2.0) * _soft(ys - hairline_y, 2.5 + 0.05 * s)
    sideburn = _soft(outline * min(aw, ah), 2.0) * (np.abs(xs - hx) > aw * 0.88) * (ys < cy + 0.35 * s)
    hair_cov = np.clip(hair_region + sideburn, 0, 1)
    streak = _smooth_noise(tex, (h, w), 0.03 * s)
    streak = cv2.GaussianBlur(streak, (0, 0), sigmaX=0.4, sigmaY=3.0)
    hair_shade = (0.55 + 0.45 * np.clip(0.7 - hv, 0, 1)) * (1 + 0.25 * streak)
    hair_rgb = hair_col[None, None, :] * hair_shade[..., None] + 6 * streak[..., None]
    img = img * (1 - hair_cov[..., None]) + hair_rgb * hair_cov[..., None]
    # the fringe shades the forehead just under it
    darken(0.15 * np.exp(-((ys - hairline_y - 0.06 * s) / (0.06 * s)) ** 2) * face_cov * (1 - hair_cov))

    wall[y0:y1, x0:x1] = img
    rgb = np.clip(cv2.GaussianBlur(wall, (0, 0), 0.55), 0, 255).astype(np.uint8)
    marks = np.array([eyes_px[0], eyes_px[1], (tip_x, tip_y),
                      project(-p.mouth_w * 0.95, p.mouth_y, mz - 0.1), project(p.mouth_w * 0.95, p.mouth_y, mz - 0.1)],
                     np.float32)
    box = (float(hcx - aw), float(cy - p.hairline * s), float(hcx + aw), float(hcy + ah))
    return Rendered(rgb, marks, box)


#: The card photo's framing: eyes at 44% of the height, about a fifth of the width apart.
CARD_PHOTO_IOD_PX = 50.0


def card_photo(seed: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """The card photo of synthetic person ``seed``: frontal, greyscale (H, W) uint8, passport framing."""
    w, h = size
    scale = w / 240
    rendered = render_face(FaceParams.from_seed(seed), size, centre=(w / 2, h * 0.47),
                           iod_px=CARD_PHOTO_IOD_PX * scale)
    grey = cv2.cvtColor(rendered.rgb, cv2.COLOR_RGB2GRAY)
    rendered.rgb.fill(0)
    return grey
