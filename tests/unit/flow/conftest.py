"""A bare check-in machine with recording services: every path, synchronously, no threads."""

import datetime as dt

import numpy as np
import pytest

from firmware.config import Config, Face, Pin
from firmware.flow.checkin import CheckInFlow
from firmware.flow.session import CardFacts, Context, Proof

NOW = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)


class Services:
    def __init__(self):
        self.calls: list[tuple] = []
        self.announced: list[str] = []
        self.published: list = []

    def announce(self, state, session):
        self.announced.append(state)

    def publish_result(self, session):
        self.published.append(dict(method=session.method, consent=dict(session.consent), proxy=session.proxy,
                                   prescription=session.prescription, eligibility_only=session.eligibility_only,
                                   registration=session.registration, proof=session.proof,
                                   card_kind=session.card.token_kind, carried=session.consent_carried_over))
        session.result_id = "r-1"

    def face_available(self):
        return True

    def start_face(self, session, token):
        """Like the face worker: a progress mailbox with a preview (a face, for the screen)."""
        from firmware.flow.session import FaceProgress, FaceSnapshot

        self.calls.append(("start_face", (session, token), {}))
        session.face = FaceProgress()
        session.face.publish(FaceSnapshot(step="capture", preview=frame(), challenge="blink"))

    def __getattr__(self, name):
        def service(*args, **kwargs):
            self.calls.append((name, args, kwargs))
        return service

    def called(self, name):
        return [call for call in self.calls if call[0] == name]


def facts(kind="card", status="valid", not_after=NOW + dt.timedelta(days=400)):
    return CardFacts(token_kind=kind, cert_der=b"\x30\x00", cert_status=status, not_after=not_after.isoformat())


def proof(**kw):
    return Proof(nonce=b"n" * 32, challenge_id="c-1", fresh=True, signature=b"s" * 256, **kw)


def context(flow, **kw):
    return {"session_id": flow.session.id, "context": Context(**kw)}


@pytest.fixture
def services():
    return Services()


@pytest.fixture
def make_flow(services):
    def make(**config):
        face = config.pop("face", Face())
        pin = config.pop("pin", Pin())
        return CheckInFlow(services, Config(face=face, pin=pin, **config), now=lambda: NOW)
    return make


@pytest.fixture
def flow(make_flow):
    return make_flow()


def tap(flow, kind="card", status="valid", the_proof=None, **kw):
    flow.send("card_presented", link=object(), tap=1)
    flow.send("card_read", facts=facts(kind, status, **kw), proof=the_proof)


def frame():
    return np.full((8, 8, 3), 180, np.uint8)


def refused(flow, event, **data) -> bool:
    """The bare machine refuses ``event`` (the runner drops such events) and stays where it was."""
    from statemachine.exceptions import TransitionNotAllowed

    state = flow.state_id
    try:
        flow.send(event, **data)
    except TransitionNotAllowed:
        return flow.state_id == state
    return False
