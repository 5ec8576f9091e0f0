"""glibc malloc settings for the kiosk process, applied once at start through ``mallopt``.

Why: the kiosk runs every card read, face try and card-face OCR on a thread of its own, and moves
megabyte frames through them (a card-camera frame is 3.7 MB as uint8, its float32 copies 15 MB).
With glibc's defaults two things keep freed frames resident (docs/notes/flow-bench.md, "Peak RSS"):

* **per-thread arenas** — up to 8 × cores of them, each keeping the memory its threads freed;
  ``M_ARENA_MAX`` = 2 caps them (the kiosk's threads take turns on the heavy work anyway);
* **the dynamic mmap threshold** — a freed mmap'd block raises the threshold to its size (up to
  32 MB), so afterwards even card frames come from the arenas and stay there once freed. Fixing
  ``M_MMAP_THRESHOLD`` at 2 MiB turns that adjustment off: a card-camera frame (3.7 MB, the holder's
  photo and birth date) is mmap'd and its pages go back to the kernel when it is freed, while face
  frames (0.9 MB) and the OCR's temporaries (≤ 1.2 MB) stay on malloc's fast path. 256 KiB saved
  more in the probe (mostly the simulator's cached poses) but mmap'd every face frame and OCR
  temporary: ~2,400 page faults and +7-10 ms of system time per OCR frame, and the probe's OCR and
  face loops took 1.6-1.9× as long on the 2-core VM (docs/notes/flow-bench.md).

Why ``mallopt`` from the process and not ``MALLOC_ARENA_MAX`` / a re-exec: the setting then travels
with the code (``uketsuke run``, the demo, the benchmarks), needs no change to the systemd unit and
no second start of the interpreter. It acts on arenas created *after* the call, so the entry point
calls it before the imports that start thread pools; glibc fixes its arena limit only once more than
8 arenas exist, which a fresh process has not. An explicit ``MALLOC_ARENA_MAX`` /
``MALLOC_MMAP_THRESHOLD_`` in the environment wins (an operator's choice is kept).

Elsewhere (musl, macOS) :func:`tune_malloc` does nothing and returns None. :func:`release_free_memory`
(``malloc_trim``) hands freed heap back after the models are loaded (their parse buffers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import threading

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENA_MAX = 2
MMAP_THRESHOLD_BYTES = 2 * 1024 * 1024

_lock = threading.Lock()
_applied: dict[str, int] | None = None


def _glibc():
    """The C library if it is glibc (with ``mallopt`` and ``malloc_trim``), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


def tune_malloc(*, arena_max: int = ARENA_MAX, mmap_threshold_bytes: int = MMAP_THRESHOLD_BYTES,
                libc_loader=_glibc) -> dict[str, int] | None:
    """Apply the kiosk's malloc settings once per process; later calls return what was applied.

    Returns:
        The settings applied (``{"arena_max": 2, "mmap_threshold_bytes": 2097152}``, without those the
        environment already set), or None when the C library is not glibc.
    """
    global _applied
    with _lock:
        if _applied is not None:
            return dict(_applied)
        libc = libc_loader()
        if libc is None:
            log.debug("not glibc: malloc left as it is")
            return None
        applied: dict[str, int] = {}
        if "MALLOC_ARENA_MAX" not in os.environ and libc.mallopt(M_ARENA_MAX, arena_max) == 1:
            applied["arena_max"] = arena_max
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ \
                and libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold_bytes) == 1:
            applied["mmap_threshold_bytes"] = mmap_threshold_bytes
        _applied = applied
        log.debug("malloc: %s", applied)
        return dict(applied)


def release_free_memory(libc_loader=_glibc) -> bool:
    """Return freed heap pages to the kernel (glibc ``malloc_trim``); False elsewhere."""
    libc = libc_loader()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
