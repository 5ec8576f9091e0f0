"""Threads that cannot die silently: a supervised loop reports every exception and starts again.

Every long-lived thread of the kiosk other than paho's network loop and pygame's main loop is a
:class:`Supervised` thread: its ``step`` runs again and again until ``stop()``; an exception in a
step is logged with its traceback, handed to ``report`` (the kiosk turns it into a staff-visible
problem), and the step is retried after a backoff that doubles up to ``max_backoff_s``. A step
that succeeds after failures calls ``recovered`` so the problem can clear.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Report = Callable[[str, BaseException | None], None]


class Supervised:
    """Run ``step()`` on a named thread until stopped; ``step`` returns seconds to wait, or None."""

    def __init__(self, name: str, step: Callable[[threading.Event], float | None], *,
                 report: Report | None = None, min_backoff_s: float = 0.5, max_backoff_s: float = 30.0):
        self.name = name
        self._step = step
        self._report = report
        self._min_backoff_s, self._max_backoff_s = min_backoff_s, max_backoff_s
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        if self._thread is None:
            self.stopping.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("thread %s did not stop within %.1f s", self.name, timeout_s)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = self._min_backoff_s
        while not self.stopping.is_set():
            try:
                wait_s = self._step(self.stopping)
            except Exception as exc:
                self.failures += 1
                log.exception("%s failed (%d in a row); again in %.1f s", self.name, self.failures, backoff)
                self._tell(exc)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            if self.failures:
                self.failures = 0
                backoff = self._min_backoff_s
                self._tell(None)
            if wait_s:
                self.stopping.wait(wait_s)

    def _tell(self, error: BaseException | None) -> None:
        if self._report is None:
            return
        try:
            self._report(self.name, error)
        except Exception:  # the reporter is the last line: it must not take the thread down
            log.exception("%s: reporting failed", self.name)
