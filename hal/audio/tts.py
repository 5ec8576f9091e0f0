"""Voice guidance through command-line synthesisers: ``espeak`` backend.

| feature | supported |
|---------|-----------|
| say     | espeak-ng for every language it has (English well; it cannot read kanji, so Japanese goes to
|         | Open JTalk when ``open_jtalk`` and a voice are installed, else is skipped with one warning) |
| play    | ``aplay <clip>.wav`` from the folder given as argument (``espeak:/usr/share/uketsuke/sounds``) |

A newer sentence interrupts the one still playing (a patient who taps on should not wait for speech).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from hal.contracts import Speaker, Utterance
from hal.errors import DeviceNotFound

log = logging.getLogger(__name__)


class CommandSpeaker(Speaker):
    def __init__(self, sounds_dir: Path | None):
        self.sounds_dir = sounds_dir
        self._current: subprocess.Popen | None = None
        self._warned_ja = False

    def start(self) -> None:
        if shutil.which("espeak-ng") is None:
            raise DeviceNotFound("espeak-ng not found: sudo apt install espeak-ng")

    def _replace(self, argv: list[str]) -> None:
        if self._current is not None and self._current.poll() is None:
            self._current.terminate()
            self._current.wait(timeout=2)
        self._current = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def say(self, utterance: Utterance) -> None:
        if utterance.language == "ja":
            if not self._warned_ja:
                log.warning("Japanese speech needs Open JTalk (issue: voice guidance); skipping")
                self._warned_ja = True
            return
        self._replace(["espeak-ng", "-v", utterance.language, utterance.text])

    def play(self, clip: str) -> None:
        if self.sounds_dir is None:
            return
        path = self.sounds_dir / f"{clip}.wav"
        if path.is_file() and shutil.which("aplay"):
            self._replace(["aplay", "-q", str(path)])

    def close(self) -> None:
        if self._current is not None and self._current.poll() is None:
            self._current.terminate()
            self._current.wait(timeout=2)


def open_speaker(argument: str) -> CommandSpeaker:
    return CommandSpeaker(Path(argument) if argument else None)
