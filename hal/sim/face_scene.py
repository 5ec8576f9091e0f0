"""What the simulated face camera sees: a person (the card holder, someone else), a printed photo, a
replayed screen, or an empty room; and what they do when the screen asks (blink, turn the head).

Driving API (the test or demo harness plays the patient)::

    camera = open_camera("sim")                     # hal.camera.sim
    camera.present(Person.holder(profile_dir))      # the card's own holder steps in front
    challenge = session.start_capture()
    camera.person.react(challenge.kind)             # the patient reads the screen and does it
    frame = camera.capture()                        # frame i of this presentation, at i / FPS s
    camera.leave()                                  # nobody there

=====================  ===================================================================
who                    reacts to ``react(kind)``
=====================  ===================================================================
live person            yes: after ~0.4 s (reading the screen) blinks or turns 35° and back
printed photo          no; ``tilt=True``: turns the print rigidly back and forth instead
replayed screen        no: plays its recorded clip (blink, turn left, turn right) in a loop
=====================  ===================================================================

Frames are 640×480 RGB uint8, the eyes ~66 px apart (a face ~160 px wide: a kiosk camera at about
60 cm). A person renders each pose once (cached by pose) and every frame adds camera jitter and
sensor noise, so a capture costs a few milliseconds after the first frames of a pose.

Thread safety: ``capture()`` runs on the camera's worker thread, ``react``/``present`` on others;
each Person guards its script with a lock, the camera its current source with another.

The print and screen media follow ``firmware.face.liveness_sim`` (same parameters), written again
here because hal never imports firmware.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import tomllib
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from hal.sim.face_render import FaceParams, render_face

log = logging.getLogger(__name__)

FPS = 30.0
FRAME_SIZE = (640, 480)  # (width, height)
NOISE_BAND_ROWS = 64
LIVE_IOD_PX = 66.0
#: Frames between the request and the start of the action: the person reads the screen first.
REACTION_FRAMES = 12
BLINK_CLOSURE = (0.35, 0.7, 1.0, 1.0, 1.0, 0.7, 0.35)  # ~230 ms of lid movement at 30 fps
TURN_STEP_DEG = 7
TURN_PEAK_DEG = 35
TURN_HOLD_FRAMES = 6
_KINDS = ("blink", "turn_left", "turn_right")


def _kind_name(kind) -> str:
    """A challenge kind as its string ("blink", "turn_left", "turn_right"); takes firmware's enum too."""
    name = str(getattr(kind, "value", kind))
    if name not in _KINDS:
        raise ValueError(f"a simulated person can do {', '.join(_KINDS)}, not {kind!r}")
    return name


@functools.lru_cache(maxsize=96)
def _pose(seed: int, yaw_deg: float, closure: float) -> np.ndarray:
    """One rendered pose of person ``seed`` in the kiosk frame (read-only, shared between callers)."""
    rgb = render_face(FaceParams.from_seed(seed), FRAME_SIZE, iod_px=LIVE_IOD_PX, yaw_deg=yaw_deg,
                      eye_closure=closure).rgb
    rgb.flags.writeable = False
    return rgb


@functools.lru_cache(maxsize=4)
def empty_room(seed: int = 0) -> np.ndarray:
    """The kiosk's view with nobody in front: a wall (read-only)."""
    rng = np.random.default_rng([0xE, seed])
    w, h = FRAME_SIZE
    rows = np.linspace(1.05, 0.9, h, dtype=np.float32)[:, None, None]
    wall = np.array(rng.uniform(150, 220, 3), np.float32)[None, None, :] * rows
    room = np.clip(np.broadcast_to(wall, (h, w, 3)), 0, 255).astype(np.uint8)
    room.flags.writeable = False
    return room


def camera_effects(scene: np.ndarray, rng: np.random.Generator, *, noise_sd: float = 2.5,
                   jitter_px: float = 0.6) -> np.ndarray:
    """What a fixed camera adds: sub-pixel jitter (sway, tremor) and sensor noise; a new array."""
    dx, dy = rng.normal(0, jitter_px, 2)
    matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    out = cv2.warpAffine(scene, matrix, (scene.shape[1], scene.shape[0]), borderMode=cv2.BORDER_REFLECT)
    # Band by band, in place: the same sums and noise draws as on the whole frame, without its
    # float64 noise and float32 copies (hal.sim.card_camera does the same)
    for top in range(0, out.shape[0], NOISE_BAND_ROWS):
        rows = out[top:top + NOISE_BAND_ROWS]
        band = rows.astype(np.float32)
        band += rng.normal(0, noise_sd, band.shape).astype(np.float32)
        np.clip(band, 0, 255, out=band)
        rows[...] = band
    return out


def print_medium(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo printed on paper: less contrast and colour, paper white, grain, soft."""
    f = photo.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    f = (grey + (f - grey) * 0.75) * 0.78 + np.array([40, 36, 28], np.float32)
    grain = cv2.GaussianBlur(rng.normal(0, 1, f.shape[:2]).astype(np.float32), (0, 0), 1.2) * 6
    return np.clip(cv2.GaussianBlur(f + grain[..., None], (0, 0), 0.8), 0, 255).astype(np.uint8)


def screen_medium(image: np.ndarray, angle_deg: float, band_px: float, band_phase: float, *,
                  sharp: bool = False) -> np.ndarray:
    """The image on a phone/tablet screen seen by the camera: gamma and tint; unless ``sharp``, an RGB
    stripe sub-pixel grid resampled at a slight angle (moiré), refresh banding and a dark bezel."""
    h, w = image.shape[:2]
    f = (image.astype(np.float32) / 255.0) ** 0.85 * np.array([0.95, 1.0, 1.05], np.float32)
    if not sharp:
        k = 3
        big = cv2.resize(f, (w * k, h * k), interpolation=cv2.INTER_NEAREST)
        grid = np.zeros((h * k, w * k, 3), np.float32)
        for channel in range(3):
            grid[:, channel::3, channel] = 1
        grid[2::3, :, :] *= 0.35
        big = cv2.GaussianBlur(big * grid / grid.mean(), (0, 0), 1.2)
        matrix = cv2.getRotationMatrix2D((w * k / 2, h * k / 2), angle_deg, 1 / k)
        matrix[0, 2] += w / 2 - w * k / 2
        matrix[1, 2] += h / 2 - h * k / 2
        f = cv2.warpAffine(big, matrix, (w, h), flags=cv2.INTER_LINEAR)
        rows = np.arange(h, dtype=np.float32)[:, None, None]
        f *= 1 + 0.06 * np.sin(2 * np.pi * rows / band_px + band_phase)
        bezel = max(2, int(0.04 * min(h, w)))
        f[:bezel], f[-bezel:], f[:, :bezel], f[:, -bezel:] = 0.05, 0.05, 0.05, 0.05
    return np.clip(f * 255, 0, 255).astype(np.uint8)


def tilt_plane(photo: np.ndarray, yaw_deg: float, distance_px: float = 800.0) -> np.ndarray:
    """A planar photo turned rigidly about its vertical centre line, in perspective."""
    h, w = photo.shape[:2]
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]], np.float32)
    a = math.radians(yaw_deg)
    projected = []
    for x, y in corners:
        px, pz = x * math.cos(a), -x * math.sin(a)
        projected.append([w / 2 + distance_px * px / (distance_px + pz), h / 2 + distance_px * y / (distance_px + pz)])
    matrix = cv2.getPerspectiveTransform(corners + np.array([w / 2, h / 2], np.float32),
                                         np.array(projected, np.float32))
    return cv2.warpPerspective(photo, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def _action_script(kind: str) -> list[tuple[float, float]]:
    """(yaw, closure) per frame for one action, from and back to the neutral pose."""
    if kind == "blink":
        return [(0.0, c) for c in BLINK_CLOSURE]
    sign = 1.0 if kind == "turn_left" else -1.0
    up = [sign * a for a in range(TURN_STEP_DEG, TURN_PEAK_DEG + 1, TURN_STEP_DEG)]
    return [(a, 0.0) for a in up + [up[-1]] * TURN_HOLD_FRAMES + up[::-1]]


class Person:
    """Something with a face in front of the kiosk camera. Make one with the class methods."""

    def __init__(self, seed: int, medium: str = "live", *, tilt: bool = False, sharp: bool = False,
                 rng_seed: int | None = None):
        if medium not in ("live", "print", "screen"):
            raise ValueError(f"medium must be live, print or screen, not {medium!r}")
        self.seed = int(seed)
        self.medium = medium
        self.tilt = tilt
        self.sharp = sharp
        self._rng = np.random.default_rng([self.seed, 0xCA3, rng_seed or 0])
        self._lock = threading.Lock()
        self._script: deque[tuple[float, float]] = deque()
        self._frame = 0
        #: Every ``react`` request, in order (the simulator's history).
        self.requests: list[str] = []
        if medium == "screen":
            self._screen = (float(self._rng.uniform(-3, 3)), float(self._rng.uniform(20, 40)),
                            float(self._rng.uniform(0, 2 * np.pi)))
            # the recorded clip: look, blink, turn left, turn right, look
            clip = [(0.0, 0.0)] * 8
            for kind in _KINDS:
                clip += _action_script(kind) + [(0.0, 0.0)] * 6
            self._clip = clip
            self._media_cache: dict[tuple[float, float], np.ndarray] = {}
        elif medium == "print":
            self._printed = print_medium(_pose(self.seed, 0.0, 0.0), self._rng)

    # ------------------------------------------------------------------ who

    @classmethod
    def live(cls, seed: int) -> Person:
        """Synthetic person ``seed`` in the flesh (the same face as a card made with that face seed)."""
        return cls(seed)

    @classmethod
    def holder(cls, profile_dir: str | os.PathLike) -> Person:
        """The holder of the virtual card in ``profile_dir`` (the person on its card photo)."""
        return cls(face_seed_of(profile_dir))

    @classmethod
    def other(cls, seed: int) -> Person:
        """Somebody else: synthetic person ``seed`` (choose one that is not the card's face seed)."""
        return cls(seed)

    @classmethod
    def printed_photo(cls, of: Person | int, *, tilt: bool = False) -> Person:
        """A print of ``of``'s frontal photo held up to the camera; ``tilt``: turned to fake a head turn."""
        return cls(of.seed if isinstance(of, Person) else of, "print", tilt=tilt)

    @classmethod
    def replayed_screen(cls, of: Person | int, *, sharp: bool = False) -> Person:
        """A recorded clip of ``of`` (blink, turn left, turn right) played on a screen to the camera;
        ``sharp``: a high-density screen in focus (gamma and tint only, the attacker's best case)."""
        return cls(of.seed if isinstance(of, Person) else of, "screen", sharp=sharp)

    def __repr__(self) -> str:
        return f"Person(seed={self.seed}, medium={self.medium!r})"

    # ------------------------------------------------------------------ what they do

    def react(self, kind) -> None:
        """Do what the screen asks (``ChallengeKind`` or "blink"/"turn_left"/"turn_right"), starting
        after :data:`REACTION_FRAMES`; a print or a replay cannot truly react (see the module table)."""
        name = _kind_name(kind)
        with self._lock:
            self.requests.append(name)
            if self.medium == "live":
                self._script.extend([(0.0, 0.0)] * REACTION_FRAMES + _action_script(name))
            elif self.medium == "print" and self.tilt and name != "blink":
                angles = list(range(0, 41, 8)) + [40] * 4 + list(range(40, -41, -8)) + [-40] * 4 \
                    + list(range(-40, 1, 8))
                self._script.extend([(0.0, 0.0)] * REACTION_FRAMES + [(float(a), 0.0) for a in angles])

    def next_frame(self) -> np.ndarray:
        """The next camera frame of this presentation (a new array the caller owns)."""
        with self._lock:
            pose = self._script.popleft() if self._script else (0.0, 0.0)
            index, self._frame = self._frame, self._frame + 1
            if self.medium == "live":
                scene = _pose(self.seed, *pose)
                return camera_effects(scene, self._rng)
            if self.medium == "print":
                scene = tilt_plane(self._printed, pose[0]) if pose[0] else self._printed
                return camera_effects(scene, self._rng, jitter_px=1.0)
            state = self._clip[index % len(self._clip)]
            shown = self._media_cache.get(state)
            if shown is None:
                shown = screen_medium(_pose(self.seed, *state), *self._screen, sharp=self.sharp)
                self._media_cache[state] = shown
            return camera_effects(shown, self._rng)


def face_seed_of(profile_dir: str | os.PathLike) -> int:
    """The synthetic person on a generated profile's card photo (card.toml ``[info] face_seed``)."""
    path = Path(profile_dir) / "card.toml"
    try:
        info = tomllib.loads(path.read_text(encoding="utf-8")).get("info", {})
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: {profile_dir} is not a virtual card profile") from None
    if "face_seed" not in info:
        raise ValueError(f"{path} has no [info] face_seed: the profile's photo is not a synthetic person "
                         "(a phone has no photo; a card made with face_image= shows the caller's face); "
                         "make it again with hal.sim.card.generator.make_profile")
    return int(info["face_seed"])
