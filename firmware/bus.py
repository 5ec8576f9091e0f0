"""Who hears of each state change (screens, tests, diagnostics): listeners called on the flow thread.

A listener must be quick and must not call back into the flow (it may post). One that raises is
logged and reported, and the others still hear of the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from firmware.flow.session import CheckInSession

log = logging.getLogger(__name__)

Listener = Callable[[str, CheckInSession], None]


class Listeners:
    def __init__(self, on_error: Callable[[Listener, Exception], None] | None = None):
        self._listeners: list[Listener] = []
        self._on_error = on_error

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    def notify(self, state: str, session: CheckInSession) -> None:
        for listener in list(self._listeners):
            try:
                listener(state, session)
            except Exception as exc:
                log.exception("state listener %r failed", listener)
                if self._on_error is not None:
                    self._on_error(listener, exc)
