"""Replay camera: plays a folder of images (sorted by name) or a video file, in a loop.

| feature    | supported |
|------------|-----------|
| images     | .png .jpg .jpeg .bmp (read with OpenCV, converted to RGB) |
| video      | anything OpenCV's FFmpeg backend reads (.mp4, .avi, .mkv) |
| set_light  | ignored (recorded light cannot change) |

Used for bench rigs and regression runs over recorded sessions. Never used to *write* frames: the
kiosk has no code path that stores an image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hal.contracts import Camera
from hal.errors import BadBackend, DeviceError, DeviceNotFound

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


class ReplayCamera(Camera):
    def __init__(self, source: Path):
        self.source = source
        self._images: list[Path] = []
        self._index = 0
        self._video = None

    def start(self) -> None:
        import cv2

        if self.source.is_dir():
            self._images = sorted(p for p in self.source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise DeviceNotFound(f"replay folder {self.source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif self.source.is_file():
            self._video = cv2.VideoCapture(str(self.source))
            if not self._video.isOpened():
                raise DeviceNotFound(f"replay file {self.source} is not a video OpenCV can read")
        else:
            raise DeviceNotFound(f"replay source {self.source} does not exist")

    def capture(self) -> np.ndarray:
        import cv2

        if self._video is None and not self._images:
            self.start()
        if self._video is not None:
            ok, bgr = self._video.read()
            if not ok:  # end of file: loop
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._video.read()
            if not ok:
                raise DeviceError(f"replay file {self.source} gave no frame")
        else:
            path = self._images[self._index % len(self._images)]
            self._index += 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DeviceError(f"replay image {path} cannot be decoded")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None


def open_camera(argument: str) -> ReplayCamera:
    """``replay:<folder of images or video file>``."""
    if not argument:
        raise BadBackend("replay camera needs a folder or video file: replay:<path>")
    return ReplayCamera(Path(argument))
