"""The clock check: the sanity window always applies; the OS decides where it can answer."""

import datetime as dt
import os

from hal.clock import JST, clock_synchronised, in_window


def test_one_jst_for_the_whole_code_base():
    from firmware.card import collation
    from hal.sim.card import throwaway_pki

    assert collation.JST is JST and throwaway_pki.JST is JST


def test_window_edges():
    start = dt.date(2026, 1, 1)
    assert in_window(dt.datetime(2026, 1, 1, 0, 0, tzinfo=JST), start).synchronised
    assert not in_window(dt.datetime(2025, 12, 31, 23, 59, tzinfo=JST), start).synchronised
    assert not in_window(dt.datetime(1970, 1, 1, tzinfo=dt.UTC), start).synchronised
    assert not in_window(dt.datetime(2056, 1, 1, tzinfo=JST), start).synchronised


def fake_tool(tmp_path, name, output, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/nonexistent")


def test_timedatectl_answers(tmp_path, monkeypatch):
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    fake_tool(tmp_path, "timedatectl", "no", monkeypatch)
    status = clock_synchronised(now)
    assert not status.synchronised and status.source == "timedatectl"
    fake_tool(tmp_path, "timedatectl", "yes", monkeypatch)
    assert clock_synchronised(now).synchronised


def test_chrony_answers_when_timedatectl_cannot(tmp_path, monkeypatch):
    fake_tool(tmp_path, "chronyc", "Leap status     : Not synchronised", monkeypatch)
    status = clock_synchronised(dt.datetime(2026, 12, 7, tzinfo=dt.UTC))
    assert not status.synchronised and status.source == "chronyc"


def test_without_any_tool_auto_uses_the_window_and_ntp_refuses(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    assert clock_synchronised(now, "auto").source == "window"
    assert not clock_synchronised(now, "ntp").synchronised
    assert os.environ["PATH"] == "/nonexistent"


def test_an_ntp_yes_about_1970_is_not_believed(tmp_path, monkeypatch):
    fake_tool(tmp_path, "timedatectl", "yes", monkeypatch)
    assert not clock_synchronised(dt.datetime(1970, 1, 2, tzinfo=dt.UTC)).synchronised
