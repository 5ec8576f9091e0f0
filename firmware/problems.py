"""What is wrong with the kiosk right now, for staff: one line per problem, keyed by its source.

A *blocking* problem (the card reader is gone, results cannot be stored, the clock is not set)
puts the kiosk out of service until it clears; a non-blocking one (a simulated LED standing in for
a broken one, another kiosk using our reader id) is only shown. Any thread may set or clear a
problem; subscribers are called after the change, on that thread, outside our lock, so they must
only post (the kiosk posts to the flow thread and the link's sender).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    key: str
    text: str
    blocking: bool

    def line(self) -> str:
        return f"{self.key}: {self.text}"


Subscriber = Callable[["Problems"], None]


class Problems:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Problem] = {}
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def set(self, key: str, text: str, *, blocking: bool = False) -> None:
        """Record (or replace) the problem of ``key``; subscribers hear of a change only."""
        problem = Problem(key, str(text)[:200], blocking)
        with self._lock:
            changed = self._items.get(key) != problem
            self._items[key] = problem
        if changed:
            (log.error if blocking else log.warning)("problem %s", problem.line())
            self._notify()

    def clear(self, key: str) -> None:
        with self._lock:
            gone = self._items.pop(key, None)
        if gone is not None:
            log.info("problem %s cleared", key)
            self._notify()

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    @property
    def blocking(self) -> list[Problem]:
        with self._lock:
            return [p for p in self._items.values() if p.blocking]

    def lines(self) -> list[str]:
        """Every problem as ``key: text``, blocking ones first."""
        with self._lock:
            items = sorted(self._items.values(), key=lambda p: (not p.blocking, p.key))
        return [p.line() for p in items]

    def _notify(self) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(self)
            except Exception:  # a broken subscriber must not stop the others or the caller
                log.exception("problems subscriber %r failed", subscriber)
