"""The system clock: Japan's time zone, and whether the clock can be trusted to judge a certificate.

A certificate's status (valid, expiring, grace, unusable) is a comparison with today's date in JST,
so a Pi that booted without network time (it has no RTC) would accept an expired certificate or
refuse a valid one. :func:`clock_synchronised` asks the OS whether the clock is synchronised
(systemd-timesyncd through ``timedatectl``, or chrony through ``chronyc``) and, where neither can
answer (a container, a bench machine), falls back to a sanity window: the clock must not be
before a configured date, nor absurdly far after it.

This module lives in ``hal/`` because it is the lowest layer: the one ``JST`` here is used by
``firmware/`` and by the simulators alike.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass

JST = dt.timezone(dt.timedelta(hours=9), "JST")

#: No kiosk runs this software before this day: a clock that says otherwise was never set.
DEFAULT_NOT_BEFORE = dt.date(2026, 1, 1)
#: A clock this far after ``not_before`` is wrong too (a corrupted RTC, a typo in a manual set).
WINDOW_YEARS = 30


@dataclass(frozen=True)
class ClockStatus:
    """Whether the clock may be trusted, and how that was decided (for staff and selftest)."""

    synchronised: bool
    source: str  # "timedatectl", "chronyc" or "window"
    detail: str


def _run(command: list[str], timeout_s: float = 3.0) -> str | None:
    """stdout of ``command``, or None when it is missing, fails or hangs (then it cannot answer)."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _timedatectl() -> ClockStatus | None:
    out = _run(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if out is None or out.strip() not in ("yes", "no"):
        return None
    synced = out.strip() == "yes"
    return ClockStatus(synced, "timedatectl", "NTP synchronised" if synced else
                       "systemd-timesyncd reports the clock is not synchronised (timedatectl timesync-status)")


def _chronyc() -> ClockStatus | None:
    out = _run(["chronyc", "-n", "tracking"])
    if out is None:
        return None
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Leap status":
            synced = value.strip() == "Normal"
            return ClockStatus(synced, "chronyc", "chrony: leap status Normal" if synced else
                               f"chrony reports leap status {value.strip()!r} (chronyc tracking)")
    return None


def in_window(now: dt.datetime, not_before: dt.date = DEFAULT_NOT_BEFORE) -> ClockStatus:
    """The sanity window alone: ``not_before`` ≤ today (JST) < ``not_before`` + 30 years."""
    today = now.astimezone(JST).date()
    latest = not_before.replace(year=not_before.year + WINDOW_YEARS)
    if not_before <= today < latest:
        return ClockStatus(True, "window", f"{today} is inside {not_before}..{latest}")
    return ClockStatus(False, "window", f"the clock says {today}, outside {not_before}..{latest}: set the time "
                                        "or enable NTP (timedatectl set-ntp true)")


def clock_synchronised(now: dt.datetime, source: str = "auto",
                       not_before: dt.date = DEFAULT_NOT_BEFORE) -> ClockStatus:
    """Is the clock fit to judge certificate dates?

    Args:
        now: the clock's current time (aware).
        source: ``"ntp"`` (the OS must say it is synchronised), ``"window"`` (the sanity window
            only), or ``"auto"`` (the OS where it can answer, else the window).
        not_before: the window's first day.

    The window is checked in every mode: an NTP daemon that says "synchronised" about a clock in
    1970 is not believed.
    """
    window = in_window(now, not_before)
    if not window.synchronised or source == "window":
        return window
    reported = _timedatectl() or _chronyc()
    if reported is not None:
        return reported
    if source == "ntp":
        return ClockStatus(False, "ntp", "neither timedatectl nor chronyc can say whether the clock is "
                                         "synchronised (install systemd-timesyncd or chrony)")
    return window
