"""``uketsuke terminal listen --staff-port N --staff-password-file F`` as a subprocess: the page is served
(and needs a login), SIGTERM stops it cleanly, and wrong options are one clear error."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from tests.services import free_port


def _listen(tmp_path, *options, port: int | None = None):
    """``terminal listen`` on ``port``; by default one where no broker listens (it keeps trying)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "provisioning.cli", "terminal", "listen", "--insecure-local", "--port",
                             str(port or free_port()), "--site", "s1", "--files", str(tmp_path / "files"), *options],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line_matching(process, pattern: str, timeout_s: float = 30.0) -> re.Match:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=timeout_s)
        except queue.Empty:
            process.kill()
            raise AssertionError(f"no line like {pattern!r}: {process.stderr.read()[-2000:]}") from None
        if match := re.search(pattern, line):
            return match


def test_listen_serves_the_staff_page_behind_a_login_and_stops_on_sigterm(tmp_path, mosquitto):
    password_file = tmp_path / "staff-password"
    password_file.write_text("sato:correct horse battery\n")
    password_file.chmod(0o600)
    process = _listen(tmp_path, "--staff-port", "0", "--staff-password-file", str(password_file),
                      port=mosquitto.port)
    try:
        url = _line_matching(process, r"staff page (http://127\.0\.0\.1:\d+/) \(users: sato\)")[1]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "api/view", timeout=10)
        assert refused.value.code == 401
        with urllib.request.urlopen(url, timeout=10) as page:  # redirected to the login form
            assert page.url.endswith("/login") and 'name="password"' in page.read().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]


@pytest.mark.parametrize("options,message", [
    (["--staff-port", "0"], "needs both --staff-port and --staff-password-file"),
    (["--staff-password-file", "x"], "needs both --staff-port and --staff-password-file"),
    (["--staff-port", "0", "--staff-password-file", "/nonexistent/staff"], "does not exist"),
])
def test_wrong_staff_options_are_one_clear_error(tmp_path, options, message):
    process = _listen(tmp_path, *options)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2 and message in " ".join(err.split())


def test_a_port_in_use_is_one_clear_error(tmp_path):
    import socket

    password_file = tmp_path / "staff-password"
    password_file.write_text("correct horse battery\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        process = _listen(tmp_path, "--staff-port", str(taken.getsockname()[1]), "--staff-password-file",
                          str(password_file))
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "uketsuke: error: the staff page cannot listen on 127.0.0.1" in err and "Traceback" not in err


def test_staff_password_prints_a_hash_line_that_the_page_accepts(tmp_path):
    from terminal.staff import StaffAccounts

    done = subprocess.run([sys.executable, "-m", "provisioning.cli", "terminal", "staff-password", "--user", "sato"],
                          input="correct horse battery\ncorrect horse battery\n", capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()  # the prompts went to stderr
    assert line.startswith("sato:scrypt$") and "correct horse" not in done.stdout
    (tmp_path / "staff").write_text(line + "\n")
    assert StaffAccounts.load(tmp_path / "staff").check("sato", "correct horse battery")
