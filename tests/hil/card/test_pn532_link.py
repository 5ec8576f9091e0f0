"""The PN532 emulator's link (``card serve --pn532-pty LINK``) replaces and deletes only what it made."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from hal.errors import DeviceError
from hal.sim.pn532_emulator import Pn532Emulator, stale_pty_link
from tests.hil.card.serve_main import serve_command

pytestmark = pytest.mark.hil


def vanished_pts() -> str:
    """A /dev/pts entry that does not exist now (what a killed emulator's link points at)."""
    number = 990000
    while os.path.lexists(f"/dev/pts/{number}"):
        number += 1
    return f"/dev/pts/{number}"


@pytest.fixture
def existing(tmp_path):
    """Paths that already exist and are not ours, by kind."""
    regular = tmp_path / "file"
    regular.write_text("someone's data\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    to_live = tmp_path / "to-live"
    to_live.symlink_to("/dev/null")
    to_elsewhere = tmp_path / "dangling-elsewhere"
    to_elsewhere.symlink_to(tmp_path / "nothing-here")
    return {"a file": regular, "a directory": folder, "a link to /dev/null, which exists": to_live,
            "a dangling link": to_elsewhere}


@pytest.mark.parametrize("kind", ["a file", "a directory", "a link to /dev/null, which exists", "a dangling link"])
def test_an_existing_path_is_refused_and_left_alone(existing, kind):
    path = existing[kind]
    before = (os.path.islink(path), os.readlink(path) if os.path.islink(path) else None,
              path.read_text() if path.is_file() and not path.is_symlink() else None)
    emulator = Pn532Emulator(link=path, emulate_time=False)
    with pytest.raises(DeviceError, match=f"already exists \\({kind}.*choose another link name"):
        emulator.start()
    emulator.close()
    after = (os.path.islink(path), os.readlink(path) if os.path.islink(path) else None,
             path.read_text() if path.is_file() and not path.is_symlink() else None)
    assert os.path.lexists(path) and before == after


def test_a_live_emulator_link_is_not_taken_over(tmp_path):
    link = tmp_path / "pn532"
    with Pn532Emulator(link=link, emulate_time=False) as first:
        second = Pn532Emulator(link=link, emulate_time=False)
        with pytest.raises(DeviceError, match=f"a link to {first.path}, which exists"):
            second.start()
        second.close()
        assert os.readlink(link) == first.path
    assert not os.path.lexists(link)


def test_a_stale_pty_link_is_replaced_and_removed_on_close(tmp_path):
    link = tmp_path / "pn532"
    link.symlink_to(vanished_pts())
    assert stale_pty_link(link)
    with Pn532Emulator(link=link, emulate_time=False) as emulator:
        assert os.readlink(link) == emulator.path
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert not os.path.lexists(link)


def test_close_keeps_a_link_somebody_replaced(tmp_path):
    link = tmp_path / "pn532"
    emulator = Pn532Emulator(link=link, emulate_time=False).start()
    link.unlink()
    link.symlink_to("/dev/null")  # somebody re-pointed it while we served
    emulator.close()
    emulator.close()
    assert os.readlink(link) == "/dev/null"
    link.unlink()
    link.write_text("now a file\n")
    Pn532Emulator(link=tmp_path / "other", emulate_time=False).start().close()
    assert link.read_text() == "now a file\n"


def test_closing_twice_never_deletes_a_successor_link(tmp_path):
    link = tmp_path / "pn532"
    first = Pn532Emulator(link=link, emulate_time=False).start()
    first.close()
    second = Pn532Emulator(link=link, emulate_time=False).start()
    try:
        first.close()
        assert os.readlink(link) == second.path
    finally:
        second.close()


def serve(card_profile, link, *, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*serve_command(), str(card_profile), "--pn532-pty", str(link)],
                          capture_output=True, text=True, timeout=timeout)


def test_card_serve_refuses_an_existing_path_with_one_line(card_profile, tmp_path):
    target = tmp_path / "ttyS0-lookalike"
    target.write_text("precious\n")
    result = serve(card_profile, target)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("uketsuke: error: ") and "already exists (a file)" in lines[0]
    assert target.read_text() == "precious\n"


def test_card_serve_replaces_a_stale_link_and_removes_only_its_own(card_profile, tmp_path):
    link = tmp_path / "pn532"
    link.symlink_to(vanished_pts())
    process = subprocess.Popen([*serve_command(), str(card_profile), "--pn532-pty", str(link)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = process.stdout.readline()
        assert "serving" in banner, banner + process.communicate(timeout=10)[0]
        pty_path = os.readlink(link)
        assert pty_path.startswith("/dev/pts/") and pty_path in banner
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert not os.path.lexists(link)


def test_card_serve_killed_leaves_a_link_the_next_run_may_replace(card_profile, tmp_path):
    link = tmp_path / "pn532"
    process = subprocess.Popen([*serve_command(), str(card_profile), "--pn532-pty", str(link)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    banner = process.stdout.readline()
    assert "serving" in banner
    process.kill()
    process.communicate(timeout=10)
    assert stale_pty_link(link)  # the pty went with the process
    again = subprocess.Popen([*serve_command(), str(card_profile), "--pn532-pty", str(link)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "serving" in again.stdout.readline()
    finally:
        again.send_signal(signal.SIGINT)
        again.communicate(timeout=10)
    assert again.returncode == 0 and not os.path.lexists(link)

