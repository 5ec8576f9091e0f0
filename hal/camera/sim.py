"""Simulated camera: a simulated person or card tray, frames injected by tests, else a test scene.

| feature            | supported |
|--------------------|-----------|
| capture            | yes (a source, injected frames looped, or a generated 640×480 scene) |
| face camera        | ``present(person)`` / ``leave()`` (hal.sim.face_scene: holder, other, print, replay) |
| card camera        | ``follow(reader)``: the sim reader's card face, or an empty tray (hal.sim.card_camera) |
| set_light          | yes (recorded in ``light_history``; scales the generated scene's brightness) |
| history            | ``frames_served`` |

Driving API: ``camera.show(frames)`` replaces what the camera sees (one array or a list played in a
loop), like ``MockPin.drive_high()`` in gpiozero; ``present(person)`` puts a simulated person (or print,
or screen) in front of it, ``leave()`` empties the scene, ``follow(reader)`` makes it the card camera
above a sim reader. Whatever was set last wins. ``frames_served`` counts frames; ``time_s`` is the
capture time of the last frame of the current presentation, frame i at i / 30 s (the consumer
paces itself; nothing here sleeps, unless ``realtime`` is set: then ``capture()`` does not return
frame i of a presentation before i / fps seconds after its first frame, like a camera delivering 30
fps; a consumer that falls behind gets the frames it missed at once, in order, since the simulated
person acts in frame time). The camera keeps only references the caller gave
it and hands out copies, so the caller's zeroing of a returned frame never corrupts the scene.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from hal.contracts import Camera

DEFAULT_SIZE = (480, 640)


def _test_scene(height: int, width: int, light: int) -> np.ndarray:
    """A neutral grey gradient with a bright square: something to look at, no face."""
    ramp = np.linspace(60, 160, width, dtype=np.float32)[None, :, None]
    scene = np.repeat(np.repeat(ramp, height, axis=0), 3, axis=2)
    scene[height // 3: 2 * height // 3, width // 3: 2 * width // 3] = 220
    scene *= 0.6 + 0.2 * light
    return np.clip(scene, 0, 255).astype(np.uint8)


class SimCamera(Camera):
    def __init__(self, size: tuple[int, int] = DEFAULT_SIZE, *, realtime: bool = False):
        self._frames: list[np.ndarray] = []
        self._size = size
        self._next = 0
        self._light = 1
        self._lock = threading.Lock()
        self.frames_served = 0
        self.light_history: list[int] = []
        self._source = None  # anything with next_frame(): a Person, a CardTray, the empty room
        self.person = None
        self._presented = 0  # frames of the current source
        self.fps = 30.0
        #: Opt-in real-time pacing (benchmarks): frame i of a presentation is served no earlier than
        #: i / fps after its first frame. Off by default: tests and demos run as fast as they can.
        self.realtime = realtime
        self._paced_from = 0.0  # time.monotonic() of the current presentation's first frame

    def present(self, person) -> None:
        """Put ``person`` (a :class:`hal.sim.face_scene.Person`) in front of the camera."""
        with self._lock:
            self._frames, self._source, self.person, self._presented = [], person, person, 0

    def leave(self) -> None:
        """Nobody in front of the camera: an empty room."""
        from hal.sim.face_scene import empty_room

        class _Room:
            def next_frame(self):
                return empty_room().copy()

        with self._lock:
            self._frames, self._source, self.person, self._presented = [], _Room(), None, 0

    def follow(self, reader, **options) -> None:
        """Be the card camera above ``reader`` (a :class:`hal.nfc.sim.SimCardReader`): see hal.sim.card_camera."""
        from hal.sim.card_camera import CardTray

        with self._lock:
            self._frames, self._source, self.person, self._presented = [], CardTray(reader, **options), None, 0

    @property
    def time_s(self) -> float:
        """Capture time of the last frame of the current presentation (frame i at i / fps)."""
        return max(0, self._presented - 1) / self.fps

    def frame_time_s(self) -> float:
        """The simulated clock: the person in front of the camera acts in frame time, not host time."""
        return self.time_s

    def show(self, frames) -> None:
        """Make the camera see ``frames`` (one RGB array or a sequence, looped); None = test scene."""
        if frames is None:
            frames = []
        elif isinstance(frames, np.ndarray):
            frames = [frames]
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be (H, W, 3) uint8 RGB arrays, not {frame.shape} {frame.dtype}")
        with self._lock:
            self._frames = list(frames)
            self._next = 0
            self._source, self.person, self._presented = None, None, 0

    def _pace(self) -> None:
        with self._lock:
            index = self._presented  # the frame about to be served
            now = time.monotonic()
            if index == 0:
                self._paced_from = now
            delay = self._paced_from + index / self.fps - now
        if delay > 0:
            time.sleep(delay)

    def capture(self) -> np.ndarray:
        if self.realtime:
            self._pace()
        with self._lock:
            self.frames_served += 1
            self._presented += 1
            if self._source is not None:
                return self._source.next_frame()
            if not self._frames:
                return _test_scene(*self._size, self._light)
            frame = self._frames[self._next % len(self._frames)]
            self._next += 1
            return frame.copy()

    def set_light(self, level: int) -> None:
        self._light = int(level)
        self.light_history.append(self._light)


def open_camera(argument: str) -> SimCamera:
    """``sim`` or ``sim:WIDTHxHEIGHT``."""
    if not argument:
        return SimCamera()
    try:
        width, height = (int(v) for v in argument.lower().split("x"))
    except ValueError:
        from hal.errors import BadBackend

        raise BadBackend(f"sim camera argument must be WIDTHxHEIGHT (e.g. 640x480), not {argument!r}") from None
    return SimCamera((height, width))
