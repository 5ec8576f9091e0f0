"""The check-in requests over a real mosquitto (#10): the challenge pool, context and registration
answers from a fixture registry, and the terminal's verification and eligibility in the ack."""

import threading
import time

import pytest

from firmware.config import Broker
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.schemas import Eligibility
from terminal.app import ReferenceTerminal
from terminal.registry import Registry, RegistryEntry, cert_sha256
from tests.proofs import Pki, face_result, pin_result
from tests.services import wait_until

pytestmark = pytest.mark.hil


@pytest.fixture(scope="module")
def pki():
    return Pki()


class Answers:
    """Collects the link's callbacks and the threads they ran on."""

    def __init__(self):
        self.contexts, self.registrations, self.acks, self.threads = [], [], {}, set()

    def on_context(self, session_id, answer):
        self.threads.add(threading.current_thread().name)
        self.contexts.append((session_id, answer))

    def on_registration(self, session_id, answer):
        self.threads.add(threading.current_thread().name)
        self.registrations.append((session_id, answer))

    def on_answer(self, result_id, ack):
        self.threads.add(threading.current_thread().name)
        self.acks[result_id] = ack


@pytest.fixture
def kiosk(tmp_path):
    """``kiosk(port)``: a started, connected link with an :class:`Answers` on it (``link.answers``)."""
    links = []

    def make(port, **attributes):
        answers = Answers()
        link = KioskLink("s1", "r1", Broker(port=port, keepalive_s=5, insecure_local=True),
                         Outbox(tmp_path / f"o{len(links)}.sqlite3"),
                         on_context=answers.on_context, on_registration=answers.on_registration)
        link.on_answer = answers.on_answer  # callbacks may also be set as attributes
        for name, value in attributes.items():
            setattr(link, name, value)
        link.answers = answers
        links.append(link)
        link.start()
        assert link.wait_connected(10)
        return link

    yield make
    for link in links:
        link.stop()
        link.outbox.close()


@pytest.fixture
def terminal(mosquitto):
    terminals = []

    def make(**options):
        t = ReferenceTerminal(Broker(port=mosquitto.port, keepalive_s=5, insecure_local=True), site="s1",
                              **options)
        t.start()
        assert t.wait_connected(10)
        terminals.append(t)
        return t

    yield make
    for t in terminals:
        t.stop()


def test_challenge_pool_fills_and_each_is_used_once(mosquitto, terminal, kiosk):
    term = terminal()
    link = kiosk(mosquitto.port)
    assert wait_until(lambda: link.challenges_ready == link.pool_size, 10)
    taken = [link.take_challenge() for _ in range(link.pool_size)]
    assert all(taken) and len({c.id for c in taken}) == link.pool_size
    assert wait_until(lambda: link.challenges_ready == link.pool_size, 10)  # refilled in the background
    again = [link.take_challenge() for _ in range(link.pool_size)]
    assert not {c.id for c in again} & {c.id for c in taken}
    assert all(len(c.nonce) == 32 and c.nonce_bytes == c.nonce for c in taken + again)
    with term.locked():
        assert term.view.challenges_issued >= 2 * link.pool_size


def test_empty_pool_never_blocks_and_expired_challenges_are_not_handed_out(mosquitto, terminal, kiosk):
    link = kiosk(mosquitto.port)  # no terminal yet: nothing to take
    started = time.monotonic()
    assert link.take_challenge() is None and time.monotonic() - started < 0.1
    terminal(challenge_ttl_s=1.0)
    link.pool_check_s = 0.2
    link._work.put(("refill",))  # as after a tap; otherwise the next periodic check asks
    assert wait_until(lambda: link.challenges_ready == link.pool_size, 10)
    with link._pool_lock:
        first = {c.id for c, _ in link._pool}
    time.sleep(1.2)  # all of those have expired
    assert wait_until(lambda: link.challenges_ready > 0, 5)
    challenge = link.take_challenge()
    assert challenge is not None and challenge.id not in first


def test_context_answer_from_the_registry(mosquitto, terminal, kiosk, pki):
    listed, stranger = pki.holder(), pki.holder()
    consented = pki.now.replace(microsecond=0)
    registry = Registry([RegistryEntry(sha256=cert_sha256(listed.cert_der), registered=False,
                                       previous_consent_at=consented, previous_consent={"PharmacistsInfo": 1},
                                       eligibility="invalid")])
    terminal(registry=registry)
    link = kiosk(mosquitto.port)
    from firmware.card.jpki import TokenKind

    link.request_context("session-1", listed.cert_der, TokenKind.CARD)
    link.request_context("session-2", stranger.cert_der, "iphone")
    answers = link.answers
    assert wait_until(lambda: len(answers.contexts) == 2, 10)
    got = dict(answers.contexts)
    assert (got["session-1"].registered, got["session-1"].previous_consent_at, got["session-1"].eligibility) == (
        False, consented, Eligibility.INVALID)
    previous = got["session-1"].previous_consent
    assert previous["PharmacistsInfo"] == 1 and previous["TestInfo"] == 0
    assert got["session-2"].previous_consent is None
    assert (got["session-2"].registered, got["session-2"].previous_consent_at, got["session-2"].eligibility) == (
        True, None, Eligibility.VALID)
    assert answers.threads == {"link-answers"}


def test_registration_refused_within_five_days_and_remembered_otherwise(mosquitto, terminal, kiosk, pki):
    soon, later = pki.holder(days_left=3), pki.holder(days_left=200)
    registry = Registry([RegistryEntry(sha256=cert_sha256(c.cert_der), registered=False) for c in (soon, later)])
    term = terminal(registry=registry)
    link = kiosk(mosquitto.port)
    link.request_registration("visit-a", soon.cert_der)
    link.request_registration("visit-b", later.cert_der)
    answers = link.answers
    assert wait_until(lambda: len(answers.registrations) == 2, 10)
    got = dict(answers.registrations)
    assert (got["visit-a"].ok, got["visit-a"].reason) == (False, "expires_soon")
    assert (got["visit-b"].ok, got["visit-b"].reason) == (True, None)
    link.request_context("visit-b", later.cert_der, "card")
    assert wait_until(lambda: answers.contexts, 10)
    assert answers.contexts[0][1].registered is True
    with term.locked():
        assert sorted(a.ok for a in term.view.registrations) == [False, True]


def test_answers_for_someone_else_are_ignored(mosquitto, terminal, kiosk, pki):
    """An answer nobody asked for (or for another session) never reaches the flow."""
    import paho.mqtt.client as mqtt

    from firmware.link.schemas import ContextAnswer, topic

    link = kiosk(mosquitto.port)
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    raw.connect("127.0.0.1", mosquitto.port)
    raw.loop_start()
    request_id = link.request_context("mine", pki.holder().cert_der, "card")
    for answer in (ContextAnswer(request_id="not-asked", session_id="mine", registered=False),
                   ContextAnswer(request_id=request_id, session_id="someone-else", registered=False)):
        raw.publish(topic("s1", "r1", "context"), answer.to_json(), qos=1).wait_for_publish(5)
    raw.publish(topic("s1", "r1", "context"), b"[" * 50, qos=1).wait_for_publish(5)
    raw.publish(topic("s1", "r1", "context"),
                ContextAnswer(request_id=request_id, session_id="mine", registered=False).to_json(),
                qos=1).wait_for_publish(5)
    raw.loop_stop()
    raw.disconnect()
    assert wait_until(lambda: link.answers.contexts, 10)
    time.sleep(0.2)
    assert [(s, a.registered) for s, a in link.answers.contexts] == [("mine", False)]


def test_ack_carries_verification_and_eligibility(mosquitto, terminal, kiosk, pki):
    valid, invalid = pki.holder(), pki.holder()
    registry = Registry([RegistryEntry(sha256=cert_sha256(invalid.cert_der), qualification_validity=2)])
    term = terminal(registry=registry, issuer_keys=pki.issuer_keys, trust_anchors=pki.anchors)
    link = kiosk(mosquitto.port)
    assert wait_until(lambda: link.challenges_ready >= 3, 10)
    fresh = pin_result(valid, link.take_challenge())
    face = face_result(invalid, link.take_challenge())
    reused_challenge = link.take_challenge()
    first_use = pin_result(valid, reused_challenge)
    no_challenge = pin_result(valid, None)
    for message in (fresh, face, first_use, no_challenge):
        link.publish_result(message)
    assert link.wait_flushed(15)
    acks = link.answers.acks
    assert wait_until(lambda: len(acks) == 4, 5)
    assert (acks[fresh.id].verified, acks[fresh.id].problems, acks[fresh.id].eligibility) == (
        True, [], Eligibility.VALID)
    assert (acks[face.id].verified, acks[face.id].problems, acks[face.id].eligibility) == (
        True, [], Eligibility.INVALID)
    assert acks[no_challenge.id].verified is True and "freshness unverified" in acks[no_challenge.id].problems[0]
    # the same challenge a second time (a replayed proof) is not fresh
    replay = pin_result(valid, reused_challenge)
    link.publish_result(replay)
    assert link.wait_flushed(10) and wait_until(lambda: replay.id in acks, 5)
    assert acks[replay.id].verified is True and "used before" in acks[replay.id].problems[0]
    assert link.answers.threads == {"link-answers"}
    with term.locked():
        assert term.view.verifications[fresh.id].fresh and not term.view.verifications[replay.id].fresh


def test_forged_signature_is_not_verified(mosquitto, terminal, kiosk, pki):
    term = terminal()
    link = kiosk(mosquitto.port)
    assert wait_until(lambda: link.challenges_ready, 10)
    forged = pin_result(pki.holder(), link.take_challenge(), forged=True)
    link.publish_result(forged)
    assert link.wait_flushed(10) and wait_until(lambda: forged.id in link.answers.acks, 5)
    ack = link.answers.acks[forged.id]
    assert ack.verified is False and any("does not verify" in p for p in ack.problems)
    assert len(link.outbox) == 0  # stored at the terminal all the same: the ack is about storage too
    lines = []
    term.printer = lines.append
    again = pin_result(pki.holder(), None, forged=True)
    link.publish_result(again)
    assert link.wait_flushed(10) and wait_until(lambda: lines, 5)
    assert "verified=NO" in lines[0]


def test_a_sending_terminal_answers_no_requests(mosquitto, terminal, kiosk):
    sender = terminal(name=None)
    link = kiosk(mosquitto.port)
    time.sleep(0.5)
    assert link.challenges_ready == 0
    with sender.locked():
        assert sender.view.challenges_issued == 0


def test_clinic_files_over_mosquitto_one_file_per_result_across_a_terminal_restart(mosquitto, terminal, kiosk,
                                                                                    pki, tmp_path):
    """A verified check-in leaves one face file; the terminal acks it only then; a terminal restarted
    on the same folder gets the kiosk's resend of that result and writes nothing new."""
    import os

    from terminal.clinic_files import ClinicFiles
    from terminal.clinic_files.documents import read_document, text_at
    from tests.unit.terminal.samples import HANAKO

    holder = pki.holder()
    registry = Registry([RegistryEntry(sha256=cert_sha256(holder.cert_der), insured=HANAKO)])
    term = terminal(registry=registry, files=ClinicFiles(tmp_path / "files", registry))
    link = kiosk(mosquitto.port)
    assert wait_until(lambda: link.challenges_ready >= 1, 10)
    message = pin_result(holder, link.take_challenge())
    link.publish_result(message)
    assert link.wait_flushed(15) and wait_until(lambda: message.id in link.answers.acks, 5)
    face = tmp_path / "files" / "face"
    names = os.listdir(face)
    assert names == [term.view.face_files[message.id]]
    fields = read_document((face / names[0]).read_bytes())
    assert text_at(fields, "MessageHeader", "CharacterCodeIdentifier") == "1"
    assert text_at(fields, "MessageBody", "ResultList", "ResultOfQualificationConfirmation", "Name") == "番号 花子"
    term.stop()
    again = terminal(registry=registry, files=ClinicFiles(tmp_path / "files", registry), name="second")
    link.publish_result(message)  # as the outbox resends an unacknowledged result
    assert wait_until(lambda: message.id in again.view.acknowledged, 10)
    assert os.listdir(face) == names


def test_proofs_of_two_cards_combined_fail_in_the_ack(mosquitto, terminal, kiosk, pki):
    """Over the wire (#11): a result pairing card A's certificate with card B's genuineness proof, a
    face score under its threshold and a certificate from an untrusted CA each come back unverified,
    with the reason, while the honest face result beside them verifies."""
    import base64

    from hal.sim.card.throwaway_pki import ThrowAwayCa
    from tests.proofs import genuineness

    term = terminal(issuer_keys=pki.issuer_keys, trust_anchors=pki.anchors)
    link = kiosk(mosquitto.port)
    assert wait_until(lambda: link.challenges_ready >= 3, 10)
    card_a, card_b = pki.holder(), pki.holder()
    honest = face_result(card_a, link.take_challenge())
    challenge = link.take_challenge()
    combined = face_result(card_a, challenge).model_copy(update={
        "genuineness_b64": base64.b64encode(genuineness(card_b, challenge.nonce, card_b.cert_der)).decode(),
        "cvc_b64": base64.b64encode(card_b.cvc).decode()})
    under = face_result(card_b, link.take_challenge(), face_score=0.3)
    for message in (honest, combined, under):
        link.publish_result(message)
    assert link.wait_flushed(15)
    acks = link.answers.acks
    assert wait_until(lambda: len(acks) == 3, 5)
    assert (acks[honest.id].verified, acks[honest.id].problems) == (True, [])
    assert acks[combined.id].verified is False
    assert any("another tap, card or result" in p for p in acks[combined.id].problems)
    assert acks[under.id].verified is False and any("is not above the threshold" in p for p in acks[under.id].problems)
    term.trust_anchors = (ThrowAwayCa.create("user authentication", pki.now).certificate,)  # same name, other key
    stranger = pin_result(card_a, None)
    link.publish_result(stranger)
    assert link.wait_flushed(10) and wait_until(lambda: stranger.id in acks, 5)
    assert acks[stranger.id].verified is False and any("look-alike CA" in p for p in acks[stranger.id].problems)
