"""Shared fixtures: headless SDL, a private data dir, mosquitto by PID, and a thread-leak guard."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import settings

from tests.services import Mosquitto

# CI must not fail on a fuzz example nobody has seen before: there the examples are derandomized (the
# same every run) and nothing is stored. Developers' runs stay random and keep finding new cases.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


@pytest.fixture
def mosquitto(tmp_path_factory):
    """A fresh mosquitto for one test (tests that restart it must not disturb others)."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def no_thread_leaks():
    """Fail a test that leaves threads running, daemon threads included (a kiosk must stop cleanly:
    a daemon thread left behind is a watcher, sender or worker that ``stop()`` forgot)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=2)
    leaked = [t.name for t in leaked if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"
