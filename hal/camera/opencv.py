"""OpenCV camera: a USB UVC camera by index (``opencv:0``) or a device/file path (``opencv:/dev/video2``).

| feature    | supported |
|------------|-----------|
| capture    | yes, RGB, the camera's default resolution (640×480 asked for) |
| set_light  | no (UVC exposure controls vary by camera; left to the camera's auto exposure) |
"""

from __future__ import annotations

import numpy as np

from hal.contracts import Camera
from hal.errors import DeviceError, DeviceNotFound


class OpenCVCamera(Camera):
    def __init__(self, source: int | str):
        self.source = source
        self._capture = None

    def start(self) -> None:
        import cv2

        if self._capture is not None:
            return
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            raise DeviceNotFound(
                f"camera {self.source!r} cannot be opened (is it connected? is the user in group 'video'?)"
            )
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, 640)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, 480)
        self._capture = capture

    def capture(self) -> np.ndarray:
        import cv2

        self.start()
        ok, bgr = self._capture.read()
        if not ok:
            raise DeviceError(f"camera {self.source!r} gave no frame")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def open_camera(argument: str) -> OpenCVCamera:
    """``opencv:<index>`` or ``opencv:<path>``; empty means index 0."""
    argument = argument or "0"
    return OpenCVCamera(int(argument) if argument.isdigit() else argument)
