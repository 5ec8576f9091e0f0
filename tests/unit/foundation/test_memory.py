"""firmware.memory: glibc malloc settings applied once, and nothing at all without glibc."""

from __future__ import annotations

import pytest

from firmware import memory


class FakeLibc:
    def __init__(self):
        self.mallopt_calls: list[tuple[int, int]] = []
        self.trims = 0

    def mallopt(self, param: int, value: int) -> int:
        self.mallopt_calls.append((param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


@pytest.fixture
def fresh(monkeypatch):
    """Forget what this process applied (restored afterwards) and any operator setting."""
    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)


def test_the_settings_are_applied_once(fresh):
    libc = FakeLibc()
    first = memory.tune_malloc(libc_loader=lambda: libc)
    again = memory.tune_malloc(libc_loader=lambda: libc)
    assert first == again == {"arena_max": 2, "mmap_threshold_bytes": 2 * 1024 * 1024}
    assert libc.mallopt_calls == [(memory.M_ARENA_MAX, 2), (memory.M_MMAP_THRESHOLD, 2 * 1024 * 1024)]


def test_without_glibc_nothing_is_called_and_none_is_returned(fresh):
    assert memory.tune_malloc(libc_loader=lambda: None) is None
    assert memory.release_free_memory(libc_loader=lambda: None) is False


def test_an_operators_environment_setting_wins(fresh, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    libc = FakeLibc()
    assert memory.tune_malloc(libc_loader=lambda: libc) == {"mmap_threshold_bytes": 2 * 1024 * 1024}
    assert libc.mallopt_calls == [(memory.M_MMAP_THRESHOLD, 2 * 1024 * 1024)]


def test_release_free_memory_trims_the_heap():
    libc = FakeLibc()
    assert memory.release_free_memory(libc_loader=lambda: libc) is True
    assert libc.trims == 1


def test_the_real_loader_finds_glibc_only_on_glibc(monkeypatch):
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))
    assert memory._glibc() is None
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    assert memory._glibc() is None
