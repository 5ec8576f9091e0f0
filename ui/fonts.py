"""Finding a font that has Japanese glyphs (IPAexGothic from Debian's fonts-ipaexfont-gothic)."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

from hal.errors import DeviceNotFound

KNOWN_PATHS = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


@cache
def japanese_font_path() -> Path:
    """Path of a font with kana and kanji; raises with the install command when none is found."""
    for candidate in KNOWN_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    if shutil.which("fc-match"):
        found = subprocess.run(["fc-match", "-f", "%{file}", ":lang=ja"], capture_output=True, text=True).stdout
        if found and Path(found).is_file() and "ipa" in found.lower() or "cjk" in found.lower():
            return Path(found)
    raise DeviceNotFound("no Japanese font found: sudo apt install fonts-ipaexfont-gothic")
