"""The check-in machine on its runner: every transition, timeouts bound to their state entry, stale
events dropped, and an exception in any ``enter_*`` that neither kills the thread nor loses the visit."""

import threading
import time

import numpy as np
import pytest
from statemachine.exceptions import TransitionNotAllowed

from firmware.config import Timeouts
from firmware.flow.checkin import CheckInFlow
from firmware.flow.runner import FlowRunner
from firmware.flow.session import CardFacts, CheckInSession, Context, Token


class Services:
    def __init__(self):
        self.calls: list[str] = []
        self.announced: list[str] = []
        self.read_tokens: list[Token] = []
        self.raise_in: str | None = None  # a service call that raises, to test faults

    def _maybe_raise(self, name):
        if self.raise_in == name:
            raise RuntimeError(f"{name} broke")

    def start_card_read(self, session, link, token, pin=None):
        self.calls.append("read")
        self.read_tokens.append(token)
        self._maybe_raise("read")

    def __getattr__(self, name):  # the other services: recorded, and broken on request
        def service(*args, **kwargs):
            self.calls.append(name)
            self._maybe_raise(name)
        return service

    def publish_result(self, session):
        self.calls.append(f"publish:{session.card.token_kind}")
        self._maybe_raise("publish")

    def announce(self, state, session):
        self.announced.append(state)
        self._maybe_raise(f"announce:{state}")


def facts():
    return CardFacts(token_kind="card", cert_der=b"\x30", cert_status="valid",
                     not_after="2030-01-01T00:00:00+00:00")


def to_done(runner):
    """From a card read to done by the shortest path: staff check, context, consent, prescription."""
    for name, data in (("choose_visual", {}), ("visual_ok", {}),
                       ("context_received", {"session_id": runner.flow.session.id, "context": Context(registered=True)}),
                       ("consent_all", {}), ("prescription_paper", {})):
        assert runner.post(name, None, **data).result(5) is True, name


@pytest.fixture
def runner_for(no_thread_leaks):
    runners = []

    def make(services, timeouts=None, *, on_fault=None, build=None):
        runner = FlowRunner(build or (lambda: CheckInFlow(services, timeouts)), on_fault=on_fault)
        runner.start()
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.stop()


def settle(runner):
    """Wait until the runner has handled everything posted so far."""
    runner.call(lambda flow: None).result(5)


def wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_happy_path_and_wipe_on_idle(runner_for):
    services = Services()
    runner = runner_for(services)
    assert runner.flow.state_id == "idle"
    assert runner.post("card_presented", None, link=None, tap=1).result(5) is True
    assert runner.flow.state_id == "reading" and services.calls == ["read"]
    frame = runner.flow.session.hold(np.full((4, 4, 3), 200, np.uint8))
    view = frame[1:3]
    token = services.read_tokens[0]
    assert runner.post("card_read", token, facts=facts()).result(5) is True
    assert runner.flow.state_id == "choose_method" and "request_context" in services.calls
    to_done(runner)
    assert runner.flow.state_id == "done" and services.calls[-1] == "publish:card"
    old = runner.flow.session
    assert old.method == "visual" and old.consent and old.prescription == "paper"
    assert runner.post("card_removed", None, tap=1).result(5) is True
    assert runner.flow.state_id == "idle"
    assert not view.any() and old.card is None and runner.flow.session is not old
    assert services.announced == ["idle", "reading", "choose_method", "visual", "checking", "consent",
                                  "prescription", "done", "idle"]


def test_read_failure_records_the_error_kind(runner_for):
    services = Services()
    runner = runner_for(services)
    runner.post("card_presented", None, tap=1)
    settle(runner)
    runner.post("read_failed", services.read_tokens[0], error=ConnectionError("x"))
    settle(runner)
    assert runner.flow.state_id == "failed" and runner.flow.session.error_kind == "ConnectionError"
    runner.post("card_removed", None, tap=1)
    settle(runner)
    assert runner.flow.state_id == "idle" and runner.flow.session.error_kind == ""


def test_unexpected_events_raise_on_the_bare_machine_and_are_refused_by_the_runner(runner_for):
    with pytest.raises(TransitionNotAllowed):
        CheckInFlow(Services()).send("card_read")
    runner = runner_for(Services())
    assert runner.post("card_read").result(5) is False  # not a lie: the machine did not take it


def test_a_timeout_that_fires_as_the_read_completes_does_not_end_done_early(runner_for):
    """Both land in the queue: the read wins, the reading timeout is stale and dropped."""
    services = Services()
    runner = runner_for(services, Timeouts(done_s=60))
    runner.post("card_presented", None, tap=1)
    settle(runner)
    reading = services.read_tokens[0]
    gate = threading.Event()
    runner.call(lambda flow: gate.wait(5))  # hold the flow thread so both events queue up
    runner.post("card_read", reading, facts=facts())
    expired = runner.post("expired", reading)  # what the reading timeout posts
    gate.set()
    assert expired.result(5) is False
    assert runner.flow.state_id == "choose_method" and runner.dropped >= 1


def test_a_late_read_after_its_timeout_is_dropped(runner_for):
    services = Services()
    runner = runner_for(services, Timeouts(card_read_s=0.1, error_s=60))
    runner.post("card_presented", None, tap=1)
    assert wait_for(lambda: runner.flow.state_id == "failed")
    assert runner.flow.session.error_kind == "LinkTimeout"  # a read error for the patient
    assert runner.post("card_read", services.read_tokens[0], facts=facts()).result(5) is False
    assert runner.flow.state_id == "failed" and "publish:card" not in services.calls


def test_states_time_out_back_to_idle(runner_for):
    services = Services()
    runner = runner_for(services, Timeouts(card_read_s=0.1, error_s=0.1))
    runner.post("card_presented", None, tap=1)
    assert wait_for(lambda: services.announced == ["idle", "reading", "failed", "idle"])
    assert runner.flow.session.error_kind == ""


def test_leaving_a_state_cancels_its_timeout(runner_for):
    services = Services()
    runner = runner_for(services, Timeouts(card_read_s=0.2))
    runner.post("card_presented", None, tap=1)
    runner.post("cancel")
    time.sleep(0.4)
    assert runner.flow.state_id == "idle" and services.announced == ["idle", "reading", "idle"]


def test_each_state_entry_gets_its_own_timeout(runner_for):
    """Re-entering a state restarts its clock: the first entry's deadline does not cut the second short."""
    services = Services()
    runner = runner_for(services, Timeouts(card_read_s=0.4, error_s=60))
    runner.post("card_presented", None, tap=1)
    time.sleep(0.3)
    runner.post("cancel")
    runner.post("card_presented", None, tap=2)
    settle(runner)
    time.sleep(0.2)  # 0.5 s after the first entry, 0.2 s into the second
    assert runner.flow.state_id == "reading"
    assert wait_for(lambda: runner.flow.state_id == "failed", 2)


def test_events_of_a_finished_visit_are_dropped(runner_for):
    services = Services()
    runner = runner_for(services)
    runner.post("card_presented", None, tap=1)
    settle(runner)
    first = services.read_tokens[0]
    runner.post("cancel")
    runner.post("card_presented", None, tap=2)
    settle(runner)
    assert runner.post("read_failed", first, error=OSError("old")).result(5) is False
    assert runner.flow.state_id == "reading"
    assert runner.post("card_removed", None, tap=1).result(5) is False  # the first card's removal
    assert runner.flow.state_id == "reading"


@pytest.mark.parametrize("broken", ["announce:idle", "read", "announce:reading", "publish", "announce:done",
                                    "announce:failed", "announce:out_of_service"])
def test_an_exception_in_any_enter_is_reported_and_the_kiosk_goes_on(runner_for, broken, caplog):
    services = Services()
    faults = []
    runner = runner_for(services, Timeouts(error_s=60), on_fault=lambda where, exc: faults.append((where, exc)))
    services.raise_in = broken
    steps = {
        "announce:idle": [("card_presented", {"tap": 1}), ("cancel", {})],
        "read": [("card_presented", {"tap": 1})],
        "announce:reading": [("card_presented", {"tap": 1})],
        "publish": [("card_presented", {"tap": 1}), ("card_read", {"facts": facts()}), "to_done"],
        "announce:done": [("card_presented", {"tap": 1}), ("card_read", {"facts": facts()}), "to_done"],
        "announce:failed": [("card_presented", {"tap": 1}), ("read_failed", {"error": OSError()})],
        "announce:out_of_service": [("device_lost", {"reason": "nfc"})],
    }[broken]
    for step in steps:
        if step == "to_done":
            settle(runner)
            for name, data in (("choose_visual", {}), ("visual_ok", {}), ("context_received", {
                    "session_id": runner.flow.session.id, "context": Context(registered=True)}),
                    ("consent_all", {}), ("prescription_paper", {})):
                runner.post(name, None, **data)
        else:
            runner.post(step[0], None, **step[1])
    settle(runner)
    assert faults and isinstance(faults[0][1], RuntimeError)
    assert broken.split(":")[0] in caplog.text or "broke" in caplog.text
    assert runner.alive
    services.raise_in = None
    # The patient is never left on a dead screen: the visit ends in failed or idle, and the next works.
    assert runner.flow.state_id in ("failed", "idle")
    runner.post("cancel")
    settle(runner)
    assert wait_for(lambda: runner.flow.state_id == "idle")
    runner.post("card_presented", None, tap=9)
    settle(runner)
    assert runner.flow.state_id == "reading"


def test_a_result_is_not_lost_when_publishing_raises(runner_for):
    """The old flow stayed in reading with its timeout cancelled and the result in a discarded Future."""
    services = Services()
    faults = []
    runner = runner_for(services, Timeouts(error_s=0.1), on_fault=lambda where, exc: faults.append(where))
    services.raise_in = "publish"
    runner.post("card_presented", None, tap=1)
    settle(runner)
    runner.post("card_read", services.read_tokens[0], facts=facts())
    settle(runner)
    for name, data in (("choose_visual", {}), ("visual_ok", {}), ("context_received", {
            "session_id": runner.flow.session.id, "context": Context(registered=True)}),
            ("consent_all", {})):
        runner.post(name, None, **data)
    runner.post("prescription_paper", None)
    settle(runner)
    assert faults == ["prescription_paper in prescription"]
    assert wait_for(lambda: runner.flow.state_id == "idle")  # failed, then its timeout


def test_the_machine_is_rebuilt_when_even_the_fault_fails(runner_for):
    services = Services()
    builds = []

    def build():
        builds.append(1)
        return CheckInFlow(services)

    runner = runner_for(services, build=build)
    services.raise_in = "announce:failed"
    runner.post("card_presented", None, tap=1)
    settle(runner)
    runner.post("read_failed", services.read_tokens[0], error=OSError())
    settle(runner)
    assert len(builds) == 2 and runner.flow.state_id == "idle" and runner.alive


def test_secrets_are_zeroed_with_the_session_and_never_print():
    session = CheckInSession()
    for digit in (1, 2, 3, 4):
        session.pin.append_digit(digit)
    for digit in (5, 5, 0, 2, 1, 7, 2, 0, 3, 5, 1, 2, 3, 4):
        session.collation_b.append_digit(digit)
    view = session.pin.view()
    assert bytes(view) == b"1234"
    assert "1234" not in repr(session) and "1234" not in str(session.pin)
    assert "55021720351234" not in repr(session)
    session.wipe()
    assert session.pin.is_zero() and session.collation_b.is_zero() and len(session.pin) == 0
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(session.pin)
    with pytest.raises(ValueError):
        session.pin.append_digit(10)


EVENTS = ["card_presented", "card_read", "read_failed", "expired", "card_removed", "cancel", "fault",
          "device_lost", "device_ok", "choose_visual", "choose_pin", "visual_ok", "pin_ok", "consent_all",
          "prescription_paper", "more_time_yes", "notice_ok"]


def test_any_sequence_of_events_with_any_tokens_leaves_a_working_flow():
    """Hypothesis: events in any order, with current, stale or no tokens, never kill the thread,
    never leave the machine outside its states, and the next visit still works."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(EVENTS), st.sampled_from(["now", "stale", "none"])), max_size=25))
    def run(script):
        services = Services()
        runner = FlowRunner(lambda: CheckInFlow(services, Timeouts(card_read_s=60, done_s=60, error_s=60)))
        runner.start()
        try:
            stale = Token("an-old-visit", 1)
            for name, which in script:
                token = {"now": runner.flow.token, "stale": stale, "none": None}[which]
                data = {"facts": facts()} if name == "card_read" else {"error": OSError()} if name == "read_failed" else {}
                if name in ("card_presented", "card_removed"):
                    data["tap"] = 1
                runner.post(name, token, **data)
            settle(runner)
            assert runner.alive
            assert runner.flow.state_id in {state.id for state in runner.flow.states}
            assert runner.post("card_read", stale, facts=facts()).result(5) is False
            for name in ("device_ok", "cancel", "cancel"):
                runner.post(name)
            settle(runner)
            if runner.flow.state_id == "failed":
                runner.post("fault")
                settle(runner)
            assert runner.flow.state_id == "idle"
            assert runner.post("card_presented", None, tap=2).result(5) is True
        finally:
            runner.stop()

    run()
