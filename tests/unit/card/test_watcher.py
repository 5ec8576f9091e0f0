"""The card watcher never dies: a backend that raises anything, a listener that raises."""

import threading
import time

import pytest

from hal.errors import DeviceError
from hal.nfc.sim import SimCardReader


class OddReader(SimCardReader):
    retry_interval_s = 0.02

    def __init__(self):
        super().__init__()
        self.raise_once: BaseException | None = None

    def wait_for_card(self, timeout_s):
        if self.raise_once is not None:
            error, self.raise_once = self.raise_once, None
            raise error
        return super().wait_for_card(timeout_s)


@pytest.fixture
def reader(no_thread_leaks):
    """An :class:`OddReader` whose watcher runs for the test and is stopped after it."""
    odd = OddReader()
    yield odd
    odd.close()


def wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_a_non_hal_error_is_a_lost_reader_and_the_watcher_goes_on(profile, reader):
    changes, presented = [], []
    reader.when_reader_changed = changes.append
    reader.when_card_presented = presented.append
    reader.watch()
    reader.raise_once = KeyError("a bug in a backend")
    assert wait_for(lambda: len(changes) == 2)
    assert isinstance(changes[0], DeviceError) and "KeyError" in str(changes[0]) and changes[1] is None
    reader.present(profile().directory)
    assert wait_for(lambda: len(presented) == 1)


def test_a_listener_that_raises_is_reported_and_the_watcher_goes_on(profile, reader):
    failures, removed = [], threading.Event()
    reader.when_card_presented = lambda link: 1 / 0
    reader.when_card_removed = removed.set
    reader.when_listener_failed = failures.append
    reader.watch()
    reader.present(profile().directory)
    assert wait_for(lambda: len(failures) == 1) and isinstance(failures[0], ZeroDivisionError)
    reader.remove()
    assert removed.wait(5)


def test_one_bad_frame_is_a_glitch_not_a_lost_reader(profile, reader):
    changes, presented = [], []
    reader.when_reader_changed = changes.append
    reader.when_card_presented = presented.append
    reader.watch()
    reader.raise_once = DeviceError("bad frame checksum")
    time.sleep(0.2)
    assert changes == []
    reader.present(profile().directory)
    assert wait_for(lambda: len(presented) == 1)
