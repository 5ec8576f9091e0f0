"""The one state machine of a check-in (python-statemachine, declared once, checked when built).

Idle → Reading (certificate through the CardLink) → Done (result queued for the terminal) → Idle.
Any state with a patient in it has a timeout back to idle, and a card pulled out at any point ends
the visit cleanly: the session is wiped on every return to idle. A blocking problem (the reader is
gone, results cannot be stored, the clock is not set) puts the kiosk out of service until it clears.

The machine knows no hardware and does no I/O: it calls a :class:`FlowServices` object (the
kiosk's wiring) for work, and that work reports back by posting events to the
:class:`~firmware.flow.runner.FlowRunner`, the one thread that drives this machine. Timeouts are
declared here per state (:attr:`CheckInFlow.TIMEOUTS`) and scheduled by that thread, not by
``invoke`` threads: python-statemachine's invoke runs its handler on a thread of its own, which
would make a second way into the machine (departure from STYLE.md §6, recorded in docs/design.md).
"""

from __future__ import annotations

import logging
from typing import Protocol

from statemachine import State, StateMachine

from firmware.config import Timeouts
from firmware.flow.session import CheckInSession, Token
from hal.contracts import CardLink
from hal.errors import LinkTimeout

log = logging.getLogger(__name__)


class FlowServices(Protocol):
    """What the machine asks of the kiosk. Each call returns at once; long work posts an event later."""

    def start_card_read(self, session: CheckInSession, link: CardLink, token: Token) -> None:
        """Read the card on a worker, then post ``card_read(facts=…)`` or ``read_failed(error=…)`` with ``token``."""

    def publish_result(self, session: CheckInSession) -> None:
        """Hand the result to the link (it stores it durably and sends it; never blocks on I/O)."""

    def announce(self, state: str, session: CheckInSession) -> None:
        """Tell the screen, LED, buzzer, speaker and staff what state the visit is in."""


class CheckInFlow(StateMachine):
    idle = State(initial=True, enter="enter_idle")
    reading = State(enter="enter_reading")
    done = State(enter="enter_done")
    failed = State(enter="enter_failed")
    out_of_service = State(enter="enter_out_of_service")  # a blocking problem; back when it clears

    card_presented = idle.to(reading)
    card_read = reading.to(done, on="keep_card_facts")
    read_failed = reading.to(failed)
    expired = reading.to(failed) | done.to(idle) | failed.to(idle)
    card_removed = (reading.to(idle, cond="removed_card_is_this_visits")
                    | done.to(idle, cond="removed_card_is_this_visits")
                    | failed.to(idle, cond="removed_card_is_this_visits"))
    cancel = reading.to(idle) | done.to(idle) | failed.to(idle)
    #: A callback raised: the visit cannot go on. Staff see the fault; the patient sees "ask staff".
    fault = idle.to(failed) | reading.to(failed) | done.to(failed) | failed.to(idle) | out_of_service.to(idle)
    device_lost = (idle.to(out_of_service) | reading.to(out_of_service) | done.to(out_of_service)
                   | failed.to(out_of_service))
    device_ok = out_of_service.to(idle)

    #: state → the ``[timeouts]`` setting after which the runner posts ``expired`` (states not listed wait).
    TIMEOUTS = {"reading": "card_read_s", "done": "done_s", "failed": "error_s"}

    def __init__(self, services: FlowServices, timeouts: Timeouts | None = None, language: str = "ja"):
        self.services = services
        self.timeouts = timeouts or Timeouts()
        self.language = language
        self.session = CheckInSession(language=language)
        #: Counts state entries; with the session id it makes the :class:`Token` of the current entry.
        self.entry = 0
        super().__init__()

    @property
    def state_id(self) -> str:
        return self.current_state_value

    @property
    def token(self) -> Token:
        return Token(self.session.id, self.entry)

    def timeout_s(self) -> float | None:
        """How long the current state waits for the patient, or None."""
        setting = self.TIMEOUTS.get(self.state_id)
        return getattr(self.timeouts, setting) if setting else None

    # ------------------------------------------------------------------ conditions

    def removed_card_is_this_visits(self, tap: int | None = None, **_) -> bool:
        """A removal belongs to this visit only if it is the removal of the card that started it."""
        return tap is None or tap == self.session.tap

    # ------------------------------------------------------------------ entering states

    def keep_card_facts(self, facts=None, **_) -> None:
        if facts is not None:
            self.session.card = facts

    def on_enter_state(self, **_) -> None:  # generic hook: runs before the state's own enter_*
        self.entry += 1

    def enter_idle(self) -> None:
        if getattr(self, "session", None) is not None:
            self.session.wipe()
            self.session = CheckInSession(language=self.language)
        self.services.announce("idle", self.session)

    def enter_reading(self, link: CardLink | None = None, tap: int | None = None, **_) -> None:
        self.session.tap = tap
        self.services.announce("reading", self.session)
        self.services.start_card_read(self.session, link, self.token)

    def enter_done(self) -> None:
        self.services.publish_result(self.session)
        self.services.announce("done", self.session)

    def enter_out_of_service(self, reason: str = "", **_) -> None:
        self.session.wipe()
        self.session.error_kind = reason
        self.services.announce("out_of_service", self.session)

    def enter_failed(self, error: BaseException | None = None, event=None, source=None, **_) -> None:
        if error is None and str(event) == "expired" and getattr(source, "id", "") == "reading":
            # The card (or a hung reader driver) did not answer in time: for the patient that is a
            # read error ("place it again"), not "the time limit has passed".
            error = LinkTimeout("the card read did not finish within timeouts.card_read_s")
        if error is not None:
            self.session.error_kind = type(error).__name__
            self.session.error_lineage = tuple(cls.__name__ for cls in type(error).__mro__)
        elif not self.session.error_kind:
            self.session.error_kind = "Timeout"
        self.session.card = None
        self.services.announce("failed", self.session)
