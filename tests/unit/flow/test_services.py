"""The kiosk's services: steps of one visit take turns on the card, and the result carries what the
visit proved and agreed (never a face, a PIN or a number)."""

import threading
import time

from firmware.bus import Listeners
from firmware.config import Config
from firmware.flow.session import CheckInSession, Proof, Token
from firmware.problems import Problems
from firmware.secrets import SecretBuffer
from firmware.steps import card as card_steps
from firmware.visit import KioskServices, Outputs, build_result

from .conftest import facts


def services(posted):
    return KioskServices(Config(), Outputs(None, None, Problems()), Listeners(),
                         lambda name, token, **data: posted.append((name, data)), now=None)


def test_a_pin_typed_before_the_tries_left_arrive_waits_for_that_read(monkeypatch):
    order, release, posted = [], threading.Event(), []

    def slow_tries(card):
        order.append("tries-start")
        release.wait(5)
        order.append("tries-end")
        return 3

    def check(card, pin, challenge):
        order.append("check")
        return Proof(b"n", None, False, signature=b"s")

    monkeypatch.setattr(card_steps, "pin_tries", slow_tries)
    monkeypatch.setattr(card_steps, "check_pin", check)
    kiosk = services(posted)
    session = CheckInSession()
    token = Token(session.id, 1)
    kiosk.read_pin_tries(session, token)
    time.sleep(0.05)
    pin = SecretBuffer(4)
    kiosk.start_pin_check(session, pin, token)
    time.sleep(0.1)
    assert order == ["tries-start"], "the VERIFY must not run while the tries-left read is on the card"
    release.set()
    kiosk.stop()
    assert order == ["tries-start", "tries-end", "check"]
    assert [name for name, _ in posted] == ["pin_tries", "pin_ok"]


def test_the_result_carries_proof_and_consent_but_nothing_personal():
    session = CheckInSession()
    session.card = facts()
    session.method, session.proxy = "pin", True
    session.consent = {"PharmacistsInfo": 1, "TestInfo": 0}
    session.prescription = "paper"
    for digit in (1, 2, 3, 4):
        session.pin.append_digit(digit)
    session.proof = Proof(b"n" * 32, "c-1", True, signature=b"s" * 256)
    result = build_result(Config(), session)
    assert result.method.value == "pin" and result.proxy and result.challenge_id == "c-1" and result.fresh
    assert result.consent["PharmacistsInfo"].flag == 1 and result.consent["TestInfo"].flag == 0
    assert b"1234" not in result.to_json()
