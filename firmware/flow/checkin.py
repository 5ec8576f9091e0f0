"""The one state machine of a check-in (python-statemachine, declared once, checked when built).

Idle → Reading (certificate through the CardLink) → Done (result queued for the terminal) → Idle.
Any state with a patient in it has a timeout back to idle, and a card pulled out at any point ends
the visit cleanly: the session is wiped on every return to idle. A reader that disappears puts the
kiosk out of service (a screen for the patient, a status for staff) until it is back.

The machine knows no hardware: it calls a :class:`FlowServices` object (the kiosk's wiring) for
work, and that work reports back by sending events. Later issues add ChooseMethod, Face, PIN,
Smartphone, CertStatus and Consent states between Reading and Done.
"""

from __future__ import annotations

import logging
from typing import Protocol

from statemachine import State, StateMachine

from firmware.config import Timeouts
from firmware.flow.session import CheckInSession

log = logging.getLogger(__name__)


class FlowServices(Protocol):
    """What the machine asks of the kiosk. Each call returns at once; long work sends an event later."""

    def start_card_read(self, session: CheckInSession) -> None:
        """Read the card in the background, then send ``card_read`` or ``read_failed(error=…)``."""

    def publish_result(self, session: CheckInSession) -> None:
        """Queue the result durably for the terminal (returns once it is in the outbox)."""

    def announce(self, state: str, session: CheckInSession) -> None:
        """Tell the screen, LED, buzzer, speaker and staff what state the visit is in."""


class StateTimeout:
    """An ``invoke`` handler: after the state's configured time, send ``expired`` (if still there)."""

    def __init__(self, setting: str):
        self.setting = setting

    def run(self, ctx) -> None:
        duration = getattr(ctx.machine.timeouts, self.setting)
        if not ctx.cancelled.wait(timeout=duration):
            ctx.send("expired")

    def __repr__(self) -> str:
        return f"StateTimeout({self.setting!r})"


class CheckInFlow(StateMachine):
    idle = State(initial=True, enter="enter_idle")
    reading = State(enter="enter_reading", invoke=StateTimeout("card_read_s"))
    done = State(enter="enter_done", invoke=StateTimeout("done_s"))
    failed = State(enter="enter_failed", invoke=StateTimeout("error_s"))
    out_of_service = State(enter="enter_out_of_service")  # the reader is gone; back when it returns

    card_presented = idle.to(reading)
    card_read = reading.to(done)
    read_failed = reading.to(failed)
    expired = reading.to(failed) | done.to(idle) | failed.to(idle)
    card_removed = reading.to(idle) | done.to(idle) | failed.to(idle)
    cancel = reading.to(idle) | done.to(idle) | failed.to(idle)
    device_lost = idle.to(out_of_service) | reading.to(out_of_service) | done.to(out_of_service) | failed.to(out_of_service)
    device_ok = out_of_service.to(idle)

    def __init__(self, services: FlowServices, timeouts: Timeouts | None = None, language: str = "ja"):
        self.services = services
        self.timeouts = timeouts or Timeouts()
        self.language = language
        self.session = CheckInSession(language=language)
        super().__init__()

    @property
    def state_id(self) -> str:
        return self.current_state_value

    def enter_idle(self) -> None:
        if getattr(self, "session", None) is not None:
            self.session.wipe()
            self.session = CheckInSession(language=self.language)
        self.services.announce("idle", self.session)

    def enter_reading(self) -> None:
        self.services.announce("reading", self.session)
        self.services.start_card_read(self.session)

    def enter_done(self) -> None:
        self.services.publish_result(self.session)
        self.services.announce("done", self.session)

    def enter_out_of_service(self, reason: str = "", **_) -> None:
        self.session.wipe()
        self.session.error_kind = reason
        self.services.announce("out_of_service", self.session)

    def enter_failed(self, error: BaseException | None = None, **_) -> None:
        if error is not None:
            self.session.error_kind = type(error).__name__
            self.session.error_lineage = tuple(cls.__name__ for cls in type(error).__mro__)
        elif not self.session.error_kind:
            self.session.error_kind = "Timeout"
        self.session.card = None
        self.services.announce("failed", self.session)
