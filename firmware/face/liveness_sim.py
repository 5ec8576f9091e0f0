"""Simulated presentations for evaluating liveness: bona-fide sequences made from one still, and attacks.

Why simulate: no presentation-attack data set may be downloaded here, and none ships in a package. What
this module can build, and its limits (stated again in docs/face-liveness.md):

* **Bona fide** from a single real photo: a camera (sub-pixel jitter, sensor noise), eyelids painted
  over the eyes for a blink (skin from above the eye, a lash line at the lid edge, lids coming down
  and up over ~5 frames), and a head turn by warping the face over a generic depth map (ellipsoid head
  + nose), so the nose really moves relative to the eyes. Real blinks and turns differ (lid shape,
  occlusion, ears): these sequences show the checks *can* pass, not a real BPCER.
* **Still print**: the photo printed (lower contrast, paper white, ink texture, slight blur) held
  still in front of the camera — hand tremor only.
* **Replayed video**: a bona-fide sequence (blink and turns) shown on a screen: gamma/colour shift,
  an RGB sub-pixel grid resampled by the camera (moiré), refresh banding, a dark bezel; and a
  *sharp* variant (colour/gamma only), the best case for an attacker.
* **Tilted photo**: a print rotated rigidly about a vertical (or horizontal) axis through the face, in
  perspective, back and forth — what an attacker does to fake a head turn.

All images here are in memory; nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.face.liveness_active import eye_points

Frame = np.ndarray
Landmarks = np.ndarray


@dataclass(frozen=True)
class Presentation:
    """A sequence of RGB frames with timestamps, and what it is (for the evaluation's bookkeeping)."""

    kind: str              # "bona_fide" or an attack type
    action: str            # what the subject does: "blink", "turn_left", "turn_right", "all", "none"
    frames: list[Frame]
    times_s: list[float]

    def wipe(self) -> None:
        for frame in self.frames:
            frame.fill(0)


# --------------------------------------------------------------------------- building blocks


def camera(frame: Frame, rng: np.random.Generator, *, noise_sd: float = 2.5, jitter_px: float = 0.6) -> Frame:
    """What a fixed camera adds to a scene: sub-pixel jitter (tremor, sway) and sensor noise."""
    dx, dy = rng.normal(0, jitter_px, 2)
    matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    out = cv2.warpAffine(frame, matrix, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REFLECT)
    noisy = out.astype(np.float32) + rng.normal(0, noise_sd, out.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def close_eyes(frame: Frame, landmarks: Landmarks, closure: float) -> Frame:
    """A copy of ``frame`` with both upper lids lowered by ``closure`` (0 open … 1 shut).

    The lid is skin of the cheek's colour, 8% darker, and darker still towards its edge (8%), with fine texture, and a lash line (0.035 eye distances thick, 40% of the skin's
    brightness) at its edge. The opening is modelled as an ellipse 0.56 × 0.26 eye distances. Real lids
    have creases, longer lashes and make-up: see docs/face-liveness.md for what this cannot show.
    """
    out = frame.copy()
    if closure <= 0:
        return out
    right_eye, left_eye = eye_points(landmarks)
    iod = float(np.linalg.norm(left_eye - right_eye))
    a, b = 0.28 * iod, 0.13 * iod
    texture_rng = np.random.default_rng(int(iod * 1000) % 2**31)  # same lid texture on every frame
    for centre in (right_eye, left_eye):
        cx, cy = float(centre[0]), float(centre[1])
        x0, x1 = int(cx - a - 2), int(cx + a + 3)
        y0, y1 = int(cy - b - 3), int(cy + b + 3)
        sy0, sy1 = int(cy + 0.30 * iod), int(cy + 0.40 * iod)  # cheek: lids are skin, a little darker
        if x0 < 0 or sy0 < 0 or x1 > frame.shape[1] or sy1 > frame.shape[0]:
            continue
        skin = 0.92 * np.median(frame[sy0:sy1, int(cx - a / 2):int(cx + a / 2)].reshape(-1, 3), axis=0)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        half = b * np.sqrt(np.clip(1 - ((xs - cx) / a) ** 2, 0, 1))  # half-height of the opening here
        opening_top = cy - half
        lid_edge = opening_top + 2 * half * closure
        covered = (ys <= lid_edge) & (half > 0)
        depth = np.clip((ys - (cy - b)) / (2 * b), 0, 1)
        grain = cv2.GaussianBlur(texture_rng.normal(0, 1, ys.shape).astype(np.float32), (0, 0), 1.0) * 3
        lid = skin[None, None, :] * (1 - 0.08 * depth)[..., None] + grain[..., None]
        weight = cv2.GaussianBlur(covered.astype(np.float32), (0, 0), max(0.5, 0.01 * iod))[..., None]
        blended = out[y0:y1, x0:x1].astype(np.float32) * (1 - weight) + lid * weight
        lash = covered & (ys >= lid_edge - 0.035 * iod)
        lash_weight = cv2.GaussianBlur(lash.astype(np.float32), (0, 0), 0.6)[..., None] * 0.6
        blended = blended * (1 - lash_weight) + (0.4 * skin)[None, None, :] * lash_weight
        out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
    return out


def turn_head(frame: Frame, landmarks: Landmarks, box: tuple[float, float, float, float], yaw_deg: float) -> Frame:
    """Rotate the face by ``yaw_deg`` (positive: the person's left) over a generic depth map.

    Depth: an ellipsoid head (half-width ≈ 1.0 eye distance, depth 0.9) plus a nose (ridge and tip,
    ≈0.4 eye distances high), zero at the head's rim so the background stays put. Orthographic
    rotation about the vertical axis, row by row: x' = x + m·(x−cx)(cos θ − 1) + z·sin θ. Where the map
    folds (the far cheek going behind the nose) the nearer surface wins (a running maximum), then the
    map is inverted by interpolation. Hair and ears are not modelled: they move with the rim.
    """
    points = np.asarray(landmarks, np.float32)
    right_eye, left_eye = eye_points(points)
    iod = float(np.linalg.norm(left_eye - right_eye))
    nose = points[2]
    bridge = (nose + (right_eye + left_eye) / 2) / 2
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0)
    ax, ay = 1.0 * iod, 1.5 * iod
    full_h, w = frame.shape[:2]
    # only the rows of the head move: work on that strip
    top, bottom = max(0, int(cy - 1.2 * ay)), min(full_h, int(cy + 1.2 * ay) + 1)
    h = bottom - top
    ys, xs = np.mgrid[top:bottom, 0:w].astype(np.float32)
    r2 = ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2
    head = 0.9 * iod * np.sqrt(np.clip(1 - r2, 0, 1))
    tip = 0.22 * iod * np.exp(-(((xs - nose[0]) / (0.15 * iod)) ** 2 + ((ys - nose[1]) / (0.20 * iod)) ** 2))
    ridge = 0.20 * iod * np.exp(-(((xs - bridge[0]) / (0.22 * iod)) ** 2 + ((ys - bridge[1]) / (0.45 * iod)) ** 2))
    inside = np.clip((1 - r2) * 4, 0, 1)
    z = head + (tip + ridge) * inside
    # Positive yaw (the person's left) moves the nose towards the subject's left eye in the image.
    theta = math.radians(yaw_deg) * (1.0 if left_eye[0] >= right_eye[0] else -1.0)
    forward = xs + inside * (xs - cx) * (math.cos(theta) - 1) + z * math.sin(theta)
    if theta < 0:  # the running maximum works left to right: mirror the problem for the other way
        forward, sources = -forward[:, ::-1], xs[:, ::-1]
    else:
        sources = xs
    visible = np.maximum.accumulate(forward, axis=1)
    src_x = np.empty_like(xs)
    targets = np.arange(w, dtype=np.float32)
    for row in range(h):
        fx = visible[row]
        keep = np.concatenate([[True], np.diff(fx) > 1e-4])
        wanted = -targets[::-1] if theta < 0 else targets
        mapped = np.interp(wanted, fx[keep], sources[row][keep])
        src_x[row] = mapped[::-1] if theta < 0 else mapped
    out = frame.copy()
    out[top:bottom] = cv2.remap(frame, src_x, ys, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def print_medium(photo: Frame, rng: np.random.Generator) -> Frame:
    """The photo as printed on paper: less contrast and colour, paper white, ink/paper grain, soft."""
    f = photo.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * 0.75
    f = f * 0.78 + np.array([40, 36, 28], np.float32)
    grain = cv2.GaussianBlur(rng.normal(0, 1, f.shape[:2]).astype(np.float32), (0, 0), 1.2) * 6
    f = cv2.GaussianBlur(f + grain[..., None], (0, 0), 0.8)
    return np.clip(f, 0, 255).astype(np.uint8)


def screen_medium(image: Frame, rng: np.random.Generator, *, sharp: bool = False) -> Frame:
    """The image shown on a phone/tablet screen and seen by the camera.

    Default: screen gamma and blue tint, an RGB stripe sub-pixel grid with dark row gaps, blurred a
    little by the lens and resampled by the camera at a slight angle (moiré), refresh banding, a dark bezel at the frame edge. ``sharp``:
    a high-density screen filmed in focus — gamma and colour only.
    """
    h, w = image.shape[:2]
    f = (image.astype(np.float32) / 255.0) ** 0.85 * np.array([0.95, 1.0, 1.05], np.float32)
    if not sharp:
        k = 3
        big = cv2.resize(f, (w * k, h * k), interpolation=cv2.INTER_NEAREST)
        grid = np.zeros((h * k, w * k, 3), np.float32)
        for channel in range(3):
            grid[:, channel::3, channel] = 1
        grid[2::3, :, :] *= 0.35  # the black matrix between pixel rows
        # sub-pixels, then the lens's blur (σ ≈ 0.4 camera pixels), brightness kept
        big = cv2.GaussianBlur(big * grid / grid.mean(), (0, 0), 1.2)
        angle, scale = rng.uniform(-3, 3), rng.uniform(0.97, 1.03) / k
        matrix = cv2.getRotationMatrix2D((w * k / 2, h * k / 2), angle, scale)
        matrix[0, 2] += w / 2 - w * k / 2
        matrix[1, 2] += h / 2 - h * k / 2
        f = cv2.warpAffine(big, matrix, (w, h), flags=cv2.INTER_LINEAR)
        rows = np.arange(h, dtype=np.float32)[:, None, None]
        f *= 1 + 0.06 * np.sin(2 * np.pi * rows / rng.uniform(20, 40) + rng.uniform(0, 2 * np.pi))
        bezel = max(2, int(0.04 * min(h, w)))
        f[:bezel], f[-bezel:], f[:, :bezel], f[:, -bezel:] = 0.05, 0.05, 0.05, 0.05
    return np.clip(f * 255, 0, 255).astype(np.uint8)


def tilt_plane(photo: Frame, yaw_deg: float, pitch_deg: float = 0.0, distance_iod: float = 12.0,
               iod_px: float = 60.0) -> Frame:
    """A planar photo rotated rigidly about its centre (vertical axis: yaw, horizontal: pitch), in perspective."""
    h, w = photo.shape[:2]
    f = distance_iod * iod_px  # camera distance in pixels: ~12 eye distances ≈ 75 cm
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]], np.float32)
    ya, pa = math.radians(yaw_deg), math.radians(pitch_deg)
    rot_y = np.array([[math.cos(ya), 0, math.sin(ya)], [0, 1, 0], [-math.sin(ya), 0, math.cos(ya)]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(pa), -math.sin(pa)], [0, math.sin(pa), math.cos(pa)]])
    projected = []
    for x, y in corners:
        px, py, pz = rot_x @ rot_y @ np.array([x, y, 0.0])
        projected.append([w / 2 + f * px / (f + pz), h / 2 + f * py / (f + pz)])
    matrix = cv2.getPerspectiveTransform(corners + np.array([w / 2, h / 2], np.float32),
                                         np.array(projected, np.float32))
    return cv2.warpPerspective(photo, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


# --------------------------------------------------------------------------- sequences


BLINK_CLOSURE = (0.0, 0.5, 1.0, 1.0, 0.5, 0.0)  # ~270 ms of lid movement at 15 fps
TURN_PROFILE_DEG = (0, 7, 14, 21, 28, 33, 35, 35, 28, 14, 0)


def _timeline(count: int, fps: float) -> list[float]:
    return [i / fps for i in range(count)]


def bona_fide(photo: Frame, landmarks: Landmarks, box, action: str, rng: np.random.Generator, *,
              fps: float = 15.0, lead_frames: int = 6, tail_frames: int = 4) -> Presentation:
    """A live person doing ``action`` ("blink", "turn_left", "turn_right", "all", "none") before a camera."""
    scenes: list[Frame] = [photo] * lead_frames
    actions = ["blink", "turn_left", "turn_right"] if action == "all" else [action]
    for step in actions:
        if step == "blink":
            scenes += [close_eyes(photo, landmarks, c) for c in BLINK_CLOSURE]
        elif step in ("turn_left", "turn_right"):
            sign = 1.0 if step == "turn_left" else -1.0
            turned = {a: turn_head(photo, landmarks, box, sign * a) for a in set(TURN_PROFILE_DEG) if a}
            scenes += [turned[a] if a else photo for a in TURN_PROFILE_DEG]
        elif step != "none":
            raise ValueError(f"unknown action {step!r}: blink, turn_left, turn_right, all or none")
        scenes += [photo] * 3
    scenes += [photo] * tail_frames
    frames = [camera(scene, rng) for scene in scenes]
    return Presentation("bona_fide", action, frames, _timeline(len(frames), fps))


def still_print(photo: Frame, rng: np.random.Generator, *, frames: int = 45, fps: float = 15.0) -> Presentation:
    """A printed photo held in front of the camera (hand tremor: ~1 px jitter)."""
    printed = print_medium(photo, rng)
    out = [camera(printed, rng, jitter_px=1.0) for _ in range(frames)]
    return Presentation("still_print", "none", out, _timeline(frames, fps))


def still_screen(photo: Frame, rng: np.random.Generator, *, frames: int = 45, fps: float = 15.0) -> Presentation:
    """A still photo shown on a phone screen held in front of the camera."""
    shown = screen_medium(photo, rng)
    out = [camera(shown, rng, jitter_px=1.0) for _ in range(frames)]
    return Presentation("still_screen", "none", out, _timeline(frames, fps))


def replay_video(source: Presentation, rng: np.random.Generator, *, sharp: bool = False) -> Presentation:
    """A recorded bona-fide sequence replayed on a screen to the camera."""
    kind = "replay_sharp" if sharp else "replay_screen"
    out = [camera(screen_medium(frame, rng, sharp=sharp), rng) for frame in source.frames]
    return Presentation(kind, source.action, out, list(source.times_s))


def tilted_photo(photo: Frame, rng: np.random.Generator, *, axis: str = "yaw", fps: float = 15.0,
                 max_deg: float = 40.0) -> Presentation:
    """A printed photo turned rigidly back and forth (both ways) to imitate a head turn or nod."""
    printed = print_medium(photo, rng)
    angles = [0, 0, 0, 0, 10, 20, 30, max_deg, max_deg, 30, 20, 10, 0, -10, -20, -30, -max_deg, -max_deg,
              -30, -20, -10, 0, 0, 0]
    scenes = [tilt_plane(printed, a, 0) if axis == "yaw" else tilt_plane(printed, 0, a) for a in angles]
    frames = [camera(scene, rng, jitter_px=1.0) for scene in scenes]
    return Presentation(f"tilted_photo_{axis}", "none", frames, _timeline(len(frames), fps))


ATTACKS: dict[str, Callable[..., Presentation]] = {
    "still_print": still_print,
    "still_screen": still_screen,
    "tilted_photo": tilted_photo,
}
