"""Raspberry Pi camera through picamera2 (``picamera2:0`` face camera, ``picamera2:1`` card camera).

| feature    | supported |
|------------|-----------|
| capture    | yes, RGB888 640×480 from the main stream |
| set_light  | yes, as an exposure-value step (glare moves between the card camera's two frames) |

picamera2 only imports on Raspberry Pi OS (it needs the libcamera bindings shipped as Debian's
``python3-picamera2``), so it is imported when the camera starts, never at module import.
"""

from __future__ import annotations

import numpy as np

from hal.contracts import Camera
from hal.errors import BackendUnavailable, BadBackend, DeviceNotFound


class PiCamera(Camera):
    def __init__(self, index: int):
        self.index = index
        self._camera = None

    def start(self) -> None:
        if self._camera is not None:
            return
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise BackendUnavailable(
                "picamera2 is not importable: on Raspberry Pi OS run 'sudo apt install python3-picamera2' "
                "and create the venv with --system-site-packages"
            ) from exc
        try:
            camera = Picamera2(self.index)
        except (IndexError, RuntimeError) as exc:
            raise DeviceNotFound(
                f"Pi camera {self.index} not found (check the ribbon cable; 'rpicam-hello --list-cameras')"
            ) from exc
        camera.configure(camera.create_video_configuration(main={"size": (640, 480), "format": "RGB888"}))
        camera.start()
        self._camera = camera

    def capture(self) -> np.ndarray:
        self.start()
        # picamera2's "RGB888" is BGR in memory order; flip to RGB for the pipeline.
        return np.ascontiguousarray(self._camera.capture_array("main")[:, :, ::-1])

    def set_light(self, level: int) -> None:
        self.start()
        self._camera.set_controls({"ExposureValue": float(level) - 1.0})

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None


def open_camera(argument: str) -> PiCamera:
    """``picamera2:<camera number>``; empty means 0."""
    if argument and not argument.isdigit():
        raise BadBackend(f"picamera2 argument must be a camera number (0, 1), not {argument!r}")
    return PiCamera(int(argument or 0))
