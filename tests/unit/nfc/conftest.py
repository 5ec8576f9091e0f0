"""Reader-backend unit tests: each module needs its vendor package, so skip those that are missing."""

from __future__ import annotations

import importlib.util

#: test module → the packages it imports at the top (a laptop without nfcpy still runs the rest).
_NEEDS = {"test_nfcpy_errors.py": ("nfc", "serial", "termios"), "test_pcsc_errors.py": ("smartcard",)}

collect_ignore = [
    module for module, packages in _NEEDS.items()
    if any(importlib.util.find_spec(package) is None for package in packages)
]
