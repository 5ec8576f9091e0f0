"""Staff 目視確認 OKs that this terminal sent, each spent on that reader's next visual result.

A visual check carries no proof: the kiosk's result only says ``method: visual``. The terminal
trusts such a result — and writes it a face file — only when its own staff pressed OK for that
reader's visit. So every ``visual_ok`` this terminal sends is recorded (reader, time, staff user,
command id); the reader's next ``visual`` result spends the latest OK sent before it, within
:attr:`VisualConfirmations.window`; any older OK for that reader belonged to a visit that ended
without a result (cancelled, card taken away) and is dropped with it. A visual result that finds
none is *unconfirmed*: flagged to staff, no face file.

An OK the kiosk did not take (its reply is ``ok: false`` or ``accepted: false``: it was not waiting
for a visual check) is dropped when the reply arrives, so a double click cannot confirm a later
visit. The record lives in the terminal's memory only, like its challenges: after a terminal
restart, a visual result still in a kiosk's outbox arrives unconfirmed.

Times: the OK's is the terminal's clock, the result's ``ts`` the kiosk's (synchronised, or the
kiosk is out of service); ``skew`` allows for the difference. Matching on ``ts`` rather than on
arrival keeps a result that waited in the outbox through a broker outage confirmed.

Not thread-safe by itself: the terminal calls it under its view lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from firmware.link.schemas import Method, Reply, ResultMessage, now_utc

#: Why an unconfirmed visual result gets no face file (in the ack's problems and on the staff page).
UNCONFIRMED = "visual check not confirmed by this terminal's staff: no face file"


@dataclass(frozen=True)
class VisualOk:
    """One 目視確認 OK as sent: to which reader, when (terminal clock), by whom, in which command."""

    site: str
    reader: str
    staff: str
    at: dt.datetime
    command_id: str


class VisualConfirmations:
    """The OKs sent and not yet spent (at most ``keep``; the oldest go first)."""

    def __init__(self, window_s: float = 1800.0, skew_s: float = 120.0, keep: int = 1000,
                 clock: Callable[[], dt.datetime] = now_utc):
        if window_s <= 0 or skew_s < 0:
            raise ValueError("the visual confirmation window must be > 0 s and the skew >= 0 s")
        # 30 min: after the OK come consent, registration and prescription screens, each with its
        # own timeout and a "more time?" question; the kiosk builds the result at the end.
        self.window = dt.timedelta(seconds=window_s)
        self.skew = dt.timedelta(seconds=skew_s)
        self.keep = keep
        self.clock = clock
        self._open: list[VisualOk] = []  # in the order sent

    def sent(self, site: str, reader: str, staff: str, command_id: str) -> VisualOk:
        """Record a ``visual_ok`` (before it is published, so no result can overtake it)."""
        ok = VisualOk(site, reader, staff, self.clock(), command_id)
        self._open.append(ok)
        del self._open[:-self.keep]
        return ok

    def answered(self, command_id: str, reply: Reply) -> VisualOk | None:
        """The kiosk's reply to a command: an OK it did not take is dropped (returned)."""
        if reply.ok and reply.detail.get("accepted", True):
            return None
        for ok in self._open:
            if ok.command_id == command_id:
                self._open.remove(ok)
                return ok
        return None

    def spend(self, result: ResultMessage) -> VisualOk | None:
        """The OK that confirms this visual result (spent now), or None: unconfirmed.

        Also drops the OKs that can no longer confirm anything: older ones for this reader (their
        visits ended without a result) and any past the window.
        """
        now = self.clock()
        self._open = [ok for ok in self._open if now - ok.at <= self.window + self.skew]
        if result.method != Method.VISUAL:
            return None
        mine = [ok for ok in self._open if (ok.site, ok.reader) == (result.site, result.reader)
                and ok.at - self.skew <= result.ts <= ok.at + self.window]
        if not mine:
            return None
        chosen = mine[-1]
        self._open = [ok for ok in self._open
                      if (ok.site, ok.reader) != (result.site, result.reader) or ok.at > chosen.at]
        return chosen

    @property
    def waiting(self) -> list[VisualOk]:
        """OKs sent and not yet spent (the staff page shows them)."""
        return list(self._open)
