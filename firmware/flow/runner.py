"""The flow's one thread: every event of a visit goes through one queue, in order.

Device watchers, card workers, the link, the screen and timeouts never touch the state machine:
they :meth:`FlowRunner.post` an event and return at once. The runner thread takes events one at a
time and drops any whose :class:`~firmware.flow.session.Token` belongs to a visit or a state entry
that is over (a card read finishing just after its timeout, a button on a screen already gone).
It schedules the current state's timeout itself, so a timeout is bound to the state entry that set
it and dies with it.

A callback that raises does not stop the thread: the error is logged with its traceback, reported
through ``on_fault`` (staff see it), and the machine is sent ``fault`` (the patient sees "please ask
at reception"). If even that fails the machine is rebuilt from scratch, in idle.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from statemachine.exceptions import TransitionNotAllowed

from firmware.flow.checkin import CheckInFlow
from firmware.flow.session import Token

log = logging.getLogger(__name__)


@dataclass
class _Event:
    name: str
    token: Token | None
    data: dict[str, Any]
    future: Future = field(default_factory=Future)


@dataclass
class _Call:
    function: Callable[[CheckInFlow], Any]
    future: Future = field(default_factory=Future)


_STOP = object()


class FlowRunner:
    """Drives one :class:`CheckInFlow` on a thread named ``flow``."""

    def __init__(self, build: Callable[[], CheckInFlow], *,
                 on_fault: Callable[[str, BaseException], None] | None = None,
                 after_recovery: Callable[[CheckInFlow], None] | None = None):
        self._build = build
        self.flow = build()
        self._on_fault = on_fault
        self._after_recovery = after_recovery
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._deadline: float | None = None
        self._deadline_token: Token | None = None
        self._scheduled_for: Token | None = None
        self.dropped = 0  # stale or unwanted events, for tests and diagnostics

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        if self._thread is None:
            self._schedule_timeout()
            self._thread = threading.Thread(target=self._run, name="flow", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("the flow thread did not stop within %.1f s", timeout_s)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ from any thread

    def post(self, name: str, token: Token | None = None, /, **data) -> Future:
        """Queue event ``name`` (never blocks). The future says whether the machine took it.

        ``token`` ties the event to a visit and state entry: it is dropped if either is over.
        ``data`` becomes the event's keyword arguments: never a secret (the library keeps them).
        """
        event = _Event(name, token, data)
        self._queue.put(event)
        return event.future

    def call(self, function: Callable[[CheckInFlow], Any]) -> Future:
        """Run ``function(flow)`` on the flow thread (reads and small changes of the session)."""
        item = _Call(function)
        self._queue.put(item)
        return item.future

    @property
    def token(self) -> Token:
        return self.flow.token

    def send_now(self, name: str, /, **data) -> bool:
        """From the flow thread only (inside :meth:`call`): dispatch ``name`` before anything queued.

        For a decision made on the flow thread that events already queued must see (the kiosk going
        back into service before the card tap that was queued behind the "reader is back" news).
        """
        if threading.current_thread() is not self._thread:
            raise RuntimeError("send_now is for the flow thread; other threads post()")
        event = _Event(name, None, data)
        self._dispatch(event)
        self._schedule_timeout()
        return event.future.result()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            while True:
                timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    token, self._deadline, self._deadline_token = self._deadline_token, None, None
                    item = _Event("expired", token, {})
                if item is _STOP:
                    return
                if isinstance(item, _Call):
                    self._call(item)
                else:
                    self._dispatch(item)
                self._schedule_timeout()
        except BaseException as exc:  # nothing above should get here: say so loudly
            log.critical("the flow thread died: %r", exc, exc_info=True)
            self._fault("flow thread", exc)
            raise

    def _call(self, item: _Call) -> None:
        try:
            item.future.set_result(item.function(self.flow))
        except Exception as exc:
            log.exception("a call on the flow thread failed")
            item.future.set_exception(exc)

    def _dispatch(self, event: _Event) -> None:
        flow = self.flow
        if event.token is not None and event.token != flow.token:
            log.debug("dropped stale %s (for %s, now %s)", event.name, event.token, flow.token)
            self.dropped += 1
            event.future.set_result(False)
            return
        try:
            flow.send(event.name, **event.data)
        except TransitionNotAllowed:
            log.debug("ignored %s in state %s", event.name, flow.state_id)
            self.dropped += 1
            event.future.set_result(False)
        except Exception as exc:
            log.exception("%s in state %s raised", event.name, flow.state_id)
            event.future.set_result(False)
            self._fault(f"{event.name} in {flow.state_id}", exc)
            self._recover(exc)
        else:
            event.future.set_result(True)

    def _recover(self, error: Exception) -> None:
        try:
            self.flow.send("fault", error=error)
        except Exception as again:
            log.exception("the flow could not take the fault either; rebuilding it in idle")
            self._fault("fault", again)
            try:
                self.flow.session.wipe()
            except Exception:
                log.exception("wiping the broken flow's session failed")
            self.flow = self._build()
            self._scheduled_for = None
        if self._after_recovery is not None:
            try:
                self._after_recovery(self.flow)
            except Exception:
                log.exception("after_recovery failed")

    def _fault(self, where: str, error: BaseException) -> None:
        if self._on_fault is not None:
            try:
                self._on_fault(where, error)
            except Exception:
                log.exception("reporting a flow fault failed")

    def _schedule_timeout(self) -> None:
        """(Re)arm the timeout when the state entry changed: each entry gets its own deadline."""
        token = self.flow.token
        if token == self._scheduled_for:
            return
        self._scheduled_for = token
        duration = self.flow.timeout_s()
        if duration is None:
            self._deadline = self._deadline_token = None
        else:
            self._deadline, self._deadline_token = time.monotonic() + duration, token
