"""Real services for tests, started and stopped by PID: mosquitto (and helpers shared by fixtures).

A missing binary skips the test on a developer's laptop but fails under CI (``CI=true``), where
``.ci/run`` must have installed it: a green CI must never hide a missing install step.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def require_binary(name: str, apt_package: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    if path is None:
        message = f"{name} not found: sudo apt install {apt_package} (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


class Mosquitto:
    """A private mosquitto on a free loopback port; ``restart()`` keeps the port (broker-restart tests).

    By default a plain, anonymous listener (clients say ``insecure_local``). ``config_text`` replaces
    that configuration (e.g. the generated production one, ``provisioning/broker_config.py``); it
    must listen on ``port`` (choose one with :func:`free_port` and pass it).
    """

    def __init__(self, workdir: Path, config_text: str | None = None, port: int | None = None):
        self.binary = require_binary("mosquitto", "mosquitto")
        self.workdir = workdir
        self.port = port or free_port()
        self.config = workdir / "mosquitto.conf"
        if config_text is None:
            config_text = (f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                           "user root\nlog_dest none\n")
        self.config.write_text(config_text)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        stderr = (self.workdir / "mosquitto.stderr").open("wb")
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        try:
            wait_for_port(self.port, self.process)
        except RuntimeError as exc:  # a config mosquitto refuses: say what it said
            said = (self.workdir / "mosquitto.stderr").read_text(errors="replace").strip()[-2000:]
            raise RuntimeError(f"{exc}; mosquitto said: {said or '(nothing)'}") from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def wait_until(predicate, timeout_s: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; returns its last value."""
    from ui.demo import wait_until as poll

    return poll(predicate, timeout_s)
