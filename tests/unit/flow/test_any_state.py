"""Hypothesis, stateful: whatever a patient, a card, the terminal and the clock do, in any order, a card
removed or a timeout run out returns the kiosk to idle from every state — and everything the visit
held (frames, previews, PIN digits, the certificate) is zeroed, not just dropped."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from statemachine.exceptions import TransitionNotAllowed

from firmware.config import Config
from firmware.errors import CollationRefused, ReadError
from firmware.flow.checkin import CheckInFlow
from firmware.flow.session import Context

from .conftest import NOW, Services, facts, frame, proof

KINDS = ("card", "face-only", "android", "iphone")
STATUSES = ("valid", "expiring", "grace", "unusable")
PLAIN_EVENTS = ("show_phone_help", "back", "notice_ok", "choose_face", "choose_pin", "choose_visual", "proxy",
                "visual_requested", "pin_submit", "pin_locked", "visual_ok", "visual_ng", "register_yes",
                "register_no", "consent_all", "consent_same", "consent_none", "consent_choose", "consent_done",
                "prescription_electronic", "prescription_paper", "more_time_yes", "more_time_no", "cancel",
                "phone_pin_needed", "expired", "device_ok")


class AnyVisit(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.services = Services()
        self.flow = CheckInFlow(self.services, Config(), now=lambda: NOW)
        self.visited: set[str] = set()

    def send(self, event, **data):
        try:
            self.flow.send(event, **data)
        except TransitionNotAllowed:
            pass
        self.visited.add(self.flow.state_id)

    # ---- what can happen
    @rule(event=st.sampled_from(PLAIN_EVENTS))
    def plain(self, event):
        self.send(event)

    @rule()
    def tap(self):
        self.send("card_presented", link=object(), tap=1)

    @rule(kind=st.sampled_from(KINDS), status=st.sampled_from(STATUSES), proved=st.booleans())
    def card_read(self, kind, status, proved):
        self.send("card_read", facts=facts(kind, status), proof=proof() if proved else None)

    @rule(digit=st.integers(0, 9))
    def digit(self, digit):
        self.flow.type_digit(digit)

    @rule()
    def hold_a_frame(self):
        self.flow.session.hold(frame())

    @rule(outcome=st.sampled_from(["passed", "failed", "unavailable", "read_failed"]))
    def face_outcome(self, outcome):
        if outcome == "passed":
            self.send("face_passed", score=0.8, threshold=0.5, live=True, proof=proof(genuineness=b"g"))
        elif outcome == "failed":
            self.send("face_failed", reason="no_match")
        elif outcome == "unavailable":
            self.send("face_unavailable", error=CollationRefused("unsure"))
        else:
            self.send("read_failed", error=ReadError("gone"))

    @rule(outcome=st.sampled_from(["ok", "wrong", "tries"]))
    def pin_outcome(self, outcome):
        if outcome == "ok":
            self.send("pin_ok", proof=proof())
        elif outcome == "wrong":
            self.send("pin_wrong", tries_left=2)
        else:
            self.send("pin_tries", tries_left=3)

    @rule(registered=st.sampled_from([True, False, None]), previous=st.booleans())
    def context(self, registered, previous):
        self.send("context_received", session_id=self.flow.session.id,
                  context=Context(registered=registered, previous_consent={"DiagnosisInfo": 1} if previous else None))

    @rule(ok=st.booleans())
    def registration(self, ok):
        self.send("registration_answer", session_id=self.flow.session.id, ok=ok)

    @rule()
    def device_lost(self):
        self.send("device_lost", reason="nfc")

    # ---- what must always hold
    def _held(self):
        session = self.flow.session
        frames = list(session.buffers)
        previews = list(session.face._previews) if session.face is not None else []
        return session, frames, previews

    def _assert_wiped(self, session, frames, previews):
        assert all(not f.any() for f in frames), "a held frame survived the visit"
        assert all(not p.any() for p in previews), "a face preview survived the visit"
        assert session.pin.is_zero() and session.collation_b.is_zero()
        assert session.card is None and session.proof is None and session.link is None

    @rule()
    def card_removed(self):
        session, frames, previews = self._held()
        state = self.flow.state_id
        phone_may_go = session.is_phone and session.proof is not None
        self.send("card_removed", tap=session.tap)
        if self.flow.state_id == "removed":
            self.send("expired")
        if state in ("idle", "out_of_service", "phone_help", "removed"):
            return
        if self.flow.state_id == state and (phone_may_go or state in ("phone_pin", "phone_hold")):
            return  # a phone held, not placed: it may leave once it proved itself, or while its PIN is typed
        assert self.flow.state_id == "idle", f"removal in {state} left the kiosk in {self.flow.state_id}"
        self._assert_wiped(session, frames, previews)

    @rule()
    def time_runs_out(self):
        session, frames, previews = self._held()
        state = self.flow.state_id
        if state in ("idle", "out_of_service"):
            return
        for _ in range(8):  # a waiting state first asks "more time?", which then runs out too
            self.send("expired")
            if self.flow.state_id == "idle":
                break
        assert self.flow.state_id == "idle", f"timeouts from {state} stopped in {self.flow.state_id}"
        self._assert_wiped(session, frames, previews)

    @invariant()
    def in_a_state_of_the_machine(self):
        if hasattr(self, "flow"):
            assert self.flow.state_id in {s.id for s in self.flow.states}


AnyVisit.TestCase.settings = settings(max_examples=250, stateful_step_count=40, deadline=None)
TestAnyVisit = AnyVisit.TestCase


def test_the_machine_reaches_every_state():
    """The random walk above is only as good as the states it reaches: a guided walk reaches all."""
    services = Services()
    flow = CheckInFlow(services, Config(), now=lambda: NOW)
    seen = {flow.state_id}

    def go(*events):
        for event, data in events:
            flow.send(event, **data)
            seen.add(flow.state_id)

    go(("show_phone_help", {}), ("card_presented", {"link": 1, "tap": 1}), ("phone_pin_needed", {}),
       ("card_removed", {"tap": 1}))
    for d in (1, 2, 3, 4):
        flow.type_digit(d)
    go(("pin_submit", {}), ("card_presented", {"link": 2, "tap": 2}), ("expired", {}), ("expired", {}))
    go(("card_presented", {"link": 1, "tap": 3}), ("card_read", {"facts": facts(status="unusable")}), ("cancel", {}))
    go(("card_presented", {"link": 1, "tap": 4}), ("card_read", {"facts": facts(status="expiring")}),
       ("notice_ok", {}), ("choose_face", {}), ("face_failed", {}), ("choose_pin", {}))
    for d in (1, 2, 3, 4):
        flow.type_digit(d)
    go(("pin_submit", {}), ("pin_ok", {"proof": proof()}))
    go(("context_received", {"session_id": flow.session.id, "context": Context(registered=False)}),
       ("register_yes", {}), ("registration_answer", {"session_id": flow.session.id, "ok": True}),
       ("consent_choose", {}), ("expired", {}), ("more_time_yes", {}), ("consent_done", {}),
       ("prescription_paper", {}), ("cancel", {}))
    go(("card_presented", {"link": 1, "tap": 5}), ("card_read", {"facts": facts()}), ("choose_visual", {}),
       ("card_removed", {"tap": 5}), ("expired", {}), ("device_lost", {"reason": "nfc"}), ("device_ok", {}),
       ("card_presented", {"link": 1, "tap": 6}), ("read_failed", {"error": ReadError("x")}))
    assert seen == {s.id for s in flow.states}, sorted({s.id for s in flow.states} - seen)
