"""The check-in machine with scripted services: every transition, timeouts, wipe on idle."""

import threading
import time

import numpy as np
import pytest
from statemachine.exceptions import TransitionNotAllowed

from firmware.config import Timeouts
from firmware.flow.checkin import CheckInFlow
from firmware.flow.session import CardFacts


class Services:
    def __init__(self):
        self.calls: list[str] = []
        self.announced: list[str] = []
        self.changed = threading.Event()

    def start_card_read(self, session):
        self.calls.append("read")

    def publish_result(self, session):
        self.calls.append(f"publish:{session.card.token_kind}")

    def announce(self, state, session):
        self.announced.append(state)
        self.changed.set()


def facts():
    return CardFacts(token_kind="card", cert_der=b"\x30", cert_status="valid")


def test_happy_path_and_wipe_on_idle():
    services = Services()
    flow = CheckInFlow(services)
    assert flow.state_id == "idle"
    flow.send("card_presented")
    assert flow.state_id == "reading" and services.calls == ["read"]
    frame = flow.session.hold(np.full((4, 4, 3), 200, np.uint8))
    view = frame[1:3]
    flow.session.card = facts()
    flow.send("card_read")
    assert flow.state_id == "done" and services.calls[-1] == "publish:card"
    old = flow.session
    flow.send("card_removed")
    assert flow.state_id == "idle"
    assert not view.any() and old.card is None and flow.session is not old
    assert services.announced == ["idle", "reading", "done", "idle"]


def test_read_failure_records_the_error_kind():
    flow = CheckInFlow(Services())
    flow.send("card_presented")
    flow.send("read_failed", error=ConnectionError("x"))
    assert flow.state_id == "failed" and flow.session.error_kind == "ConnectionError"
    flow.send("card_removed")
    assert flow.state_id == "idle" and flow.session.error_kind == ""


def test_unexpected_events_raise():
    flow = CheckInFlow(Services())
    with pytest.raises(TransitionNotAllowed):
        flow.send("card_read")


def test_states_time_out_back_to_idle():
    services = Services()
    flow = CheckInFlow(services, Timeouts(card_read_s=0.1, error_s=0.1))
    flow.send("card_presented")
    deadline = time.monotonic() + 5
    while flow.state_id != "idle" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert services.announced == ["idle", "reading", "failed", "idle"]
    assert flow.session.error_kind == ""


def test_leaving_a_state_cancels_its_timeout():
    services = Services()
    flow = CheckInFlow(services, Timeouts(card_read_s=0.2))
    flow.send("card_presented")
    flow.send("cancel")
    time.sleep(0.4)
    assert flow.state_id == "idle" and services.announced == ["idle", "reading", "idle"]
