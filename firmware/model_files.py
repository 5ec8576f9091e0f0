"""Reading a shipped model file only if it is the one its manifest names (face and OCR models alike).

A model that changed on disk would silently change the kiosk's error rates, so every loader reads its
files through :func:`read_verified` and refuses a missing or changed file with one clear ModelError.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from firmware.errors import ModelError


def read_verified(path: Path, expected_sha256: str, what: str, restore: str) -> bytes:
    """The bytes of ``path`` after checking their sha256 against ``expected_sha256``.

    Args:
        what: how the message names the file, e.g. ``"model onet: file"`` or ``"OCR model"``.
        restore: how to fix it, e.g. ``"run python models/derive.py"``.

    Raises:
        ModelError: the file is missing, or its sha256 differs from the manifest's.
    """
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise ModelError(f"{what} {path} is missing; {restore}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256.lower():
        raise ModelError(f"{what} {path} has sha256 {digest[:16]}…, the manifest expects "
                         f"{expected_sha256[:16]}…; refusing a changed model ({restore})")
    return data
