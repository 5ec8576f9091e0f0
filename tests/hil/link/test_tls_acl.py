"""ACL/TLS on the wire: a real mosquitto started with the generated production config
(``provisioning/broker_config.py``), a throw-away device CA (``tests/device_pki.py``), paho clients.

A refused publish is proven twice: the MQTT 5 PUBACK says "Not authorized" (0x87), and a subscriber
allowed to see the topic never gets it (a permitted marker published afterwards arrives first).
"""

from __future__ import annotations

import queue
import ssl
import sys
from dataclasses import dataclass
from pathlib import PurePosixPath

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.config import Broker
from firmware.link.limits import MAX_RESULT_BYTES
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.probe import probe_broker
from firmware.link.schemas import CommandName, Eligibility, topic
from firmware.link.tls import reader_identity, terminal_identity
from provisioning.broker_config import MAX_PACKET_BYTES, SiteBroker, mosquitto_conf, write
from terminal.app import ReferenceTerminal
from tests.device_pki import DeviceCa
from tests.proofs import Pki, pin_result
from tests.services import Mosquitto, free_port, wait_until

pytestmark = pytest.mark.hil

NOT_AUTHORIZED = 0x87
WAIT_S = 10


@dataclass
class Devices:
    ca: DeviceCa
    other_ca: DeviceCa
    r1: object
    r2: object
    terminal: object
    impostor_r1: object  # CN reader.s1.r1, but from an unrelated CA


@pytest.fixture(scope="module")
def devices(tmp_path_factory):
    root = tmp_path_factory.mktemp("device-pki")
    ca, other = DeviceCa(root / "site-ca"), DeviceCa(root / "other-ca", "unrelated TEST CA")
    ca.issue("broker", server=True)
    return Devices(ca, other, ca.issue(reader_identity("s1", "r1")), ca.issue(reader_identity("s1", "r2")),
                   ca.issue(terminal_identity("s1")), other.issue(reader_identity("s1", "r1")))


@pytest.fixture(scope="module")
def secure_broker(devices, tmp_path_factory):
    """mosquitto with the generated mosquitto.conf + acl for site s1 (readers r1, r2)."""
    workdir = tmp_path_factory.mktemp("secure-mosquitto")
    port = free_port()
    certs = devices.ca.directory
    layout = SiteBroker(site="s1", readers=("r1", "r2"), port=port, bind="127.0.0.1",
                        install_dir=PurePosixPath(workdir), ca_file=PurePosixPath(devices.ca.ca_file),
                        cert_file=PurePosixPath(certs / "broker.crt"), key_file=PurePosixPath(certs / "broker.key"),
                        persistence_dir=PurePosixPath(workdir), log_dest=f"file {workdir / 'mosquitto.log'}")
    write(layout, workdir)
    # The tests run as root: mosquitto would otherwise drop to its own user, which cannot read tmp files.
    broker = Mosquitto(workdir, mosquitto_conf(layout) + "user root\n", port=port)
    broker.start()
    yield broker
    broker.stop()


class Probe:
    """A raw MQTT 5 client over TLS that records what happens (callbacks only queue)."""

    def __init__(self, port: int, ca_file, device=None, client_id: str = "", session_expiry_s: int = 0):
        self.events: queue.Queue = queue.Queue()
        self.messages: list[tuple[str, bytes]] = []
        self.last_failure: tuple | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        context = ssl.create_default_context(cafile=str(ca_file))
        if device is not None:
            context.load_cert_chain(str(device.cert), str(device.key))
        self.client.tls_set_context(context)
        self.client.on_connect = lambda c, u, f, rc, p: self.events.put(("connect", rc.value))
        # paho gives no error to on_connect_fail; it runs inside paho's ``except OSError``
        self.client.on_connect_fail = lambda c, u: self.events.put(("connect_fail", str(sys.exc_info()[1])))
        self.client.on_disconnect = lambda c, u, f, rc, p: self.events.put(("disconnect", rc.value))
        self.client.on_publish = lambda c, u, mid, rc, p: self.events.put(("puback", mid, rc.value))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.events.put(("suback", mid))
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.reconnect_delay_set(1, 1)
        properties = Properties(PacketTypes.CONNECT)
        if session_expiry_s:
            properties.SessionExpiryInterval = session_expiry_s
        self.client.connect_async("127.0.0.1", port, clean_start=not session_expiry_s, properties=properties)
        self.client.loop_start()

    def next(self, kind: str, mid: int | None = None) -> tuple:
        """The next event of ``kind`` (for ``mid``), skipping others; fails after WAIT_S."""
        while True:
            event = self.events.get(timeout=WAIT_S)
            if event[0] == kind and (mid is None or event[1] == mid):
                return event

    def connected(self) -> bool:
        """Waits for the next connect attempt's outcome: True if the broker accepted us."""
        while True:
            event = self.events.get(timeout=WAIT_S)
            if event[0] == "connect":
                return event[1] == 0
            if event[0] in ("disconnect", "connect_fail"):
                self.last_failure = event
                return False

    def publish(self, topic_name: str, payload: bytes, qos: int = 1) -> int:
        """Publish and return the PUBACK reason code."""
        info = self.client.publish(topic_name, payload, qos=qos)
        return self.next("puback", info.mid)[2]

    def subscribe(self, *topics: str) -> None:
        result, mid = self.client.subscribe([(t, 1) for t in topics])
        assert result == mqtt.MQTT_ERR_SUCCESS
        self.next("suback", mid)

    def got(self, topic_name: str, payload: bytes | None = None) -> bool:
        return any(t == topic_name and (payload is None or p == payload) for t, p in list(self.messages))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def probe(secure_broker, devices):
    """``probe(device, **options)``: a connected raw client (closed at the end)."""
    made = []

    def make(device, *, ca_file=None, expect_connected=True, **options):
        client = Probe(secure_broker.port, ca_file or devices.ca.ca_file, device, **options)
        made.append(client)
        if expect_connected:
            assert client.connected(), f"{getattr(device, 'cn', None)} could not connect"
        return client

    yield make
    for client in made:
        client.close()


def test_a_reader_cannot_publish_on_another_readers_topics(probe, devices):
    terminal, reader_a = probe(devices.terminal), probe(devices.r1)
    terminal.subscribe(*(f"uketsuke/v1/s1/+/{leaf}" for leaf in ("result", "status", "event", "reply")))
    forged = b'{"forged": true}'
    for leaf in ("result", "status", "event", "reply", "context_request"):
        assert reader_a.publish(topic("s1", "r2", leaf), forged) == NOT_AUTHORIZED, leaf
    marker = b'{"marker": 1}'
    assert reader_a.publish(topic("s1", "r1", "result"), marker) == 0  # its own: allowed
    assert wait_until(lambda: terminal.got(topic("s1", "r1", "result"), marker), WAIT_S)
    assert not any(t.startswith("uketsuke/v1/s1/r2/") for t, _ in terminal.messages)


def test_only_the_terminal_sends_commands_and_answers(probe, devices):
    reader_a, terminal = probe(devices.r1), probe(devices.terminal)
    reader_a.subscribe(*(topic("s1", "r1", leaf) for leaf in ("cmd", "ack", "challenge")))
    forged = b'{"v": 1, "cmd": "visual_ok", "id": "forged"}'
    for leaf in ("cmd", "ack", "challenge", "context", "registration"):
        assert reader_a.publish(topic("s1", "r1", leaf), forged) == NOT_AUTHORIZED, leaf
        assert reader_a.publish(topic("s1", "r2", leaf), forged) == NOT_AUTHORIZED, leaf
    command = b'{"v": 1, "cmd": "visual_ok", "id": "staff-1"}'
    assert terminal.publish(topic("s1", "r1", "cmd"), command) == 0
    assert wait_until(lambda: reader_a.got(topic("s1", "r1", "cmd")), WAIT_S)
    assert reader_a.messages == [(topic("s1", "r1", "cmd"), command)]  # the terminal's, never its own forgery


def test_a_reader_cannot_read_another_readers_commands(probe, devices):
    """mosquitto 2.0 grants the SUBSCRIBE but checks ``read`` on delivery: nothing of r1's arrives."""
    reader_a, reader_b, terminal = probe(devices.r1), probe(devices.r2), probe(devices.terminal)
    reader_a.subscribe(topic("s1", "r1", "cmd"))
    reader_b.subscribe(topic("s1", "r1", "cmd"), "uketsuke/v1/s1/+/cmd", "uketsuke/v1/#", topic("s1", "r2", "cmd"))
    assert terminal.publish(topic("s1", "r1", "cmd"), b'{"for": "r1"}') == 0
    assert terminal.publish(topic("s1", "r2", "cmd"), b'{"for": "r2"}') == 0  # after r1's, to the same subscriber
    assert wait_until(lambda: reader_b.got(topic("s1", "r2", "cmd")), WAIT_S)
    assert wait_until(lambda: reader_a.got(topic("s1", "r1", "cmd")), WAIT_S)
    assert not reader_b.got(topic("s1", "r1", "cmd"))


@pytest.mark.parametrize("who", ["no certificate", "certificate from another CA"])
def test_a_client_without_a_site_certificate_cannot_connect(probe, devices, who):
    device = None if who == "no certificate" else devices.impostor_r1
    client = probe(device, expect_connected=False)
    assert client.connected() is False
    assert client.last_failure[0] == "disconnect"  # the TLS 1.3 handshake ends, then the broker hangs up
    assert client.connected() is False  # and again on paho's retry: never a CONNACK


def test_a_client_that_does_not_trust_the_broker_does_not_connect(probe, devices):
    """The broker's certificate is checked against our CA file: an impostor broker gets nothing."""
    client = probe(devices.r1, ca_file=devices.other_ca.ca_file, expect_connected=False)
    assert client.connected() is False
    assert client.last_failure[0] == "connect_fail" and "CERTIFICATE_VERIFY_FAILED" in client.last_failure[1]
    assert client.connected() is False  # paho's retry fails the same way


def test_a_payload_above_the_limit_is_refused(probe, devices):
    terminal, reader_a = probe(devices.terminal), probe(devices.r1)
    terminal.subscribe(topic("s1", "r1", "result"))
    oversize = b"x" * MAX_PACKET_BYTES
    reader_a.client.publish(topic("s1", "r1", "result"), oversize, qos=0)  # QoS 0: paho does not resend it
    assert reader_a.next("disconnect")[1] != 0  # the broker drops a client that sends a larger packet
    largest = b"y" * MAX_RESULT_BYTES  # the largest payload the link carries still goes through
    assert reader_a.next("connect")[1] == 0  # paho reconnects
    assert reader_a.publish(topic("s1", "r1", "result"), largest) == 0
    assert wait_until(lambda: terminal.got(topic("s1", "r1", "result"), largest), WAIT_S)
    assert not terminal.got(topic("s1", "r1", "result"), oversize)


def _tls_broker(port: int, ca_file, device, **options) -> Broker:
    return Broker(host="127.0.0.1", port=port, keepalive_s=5, ca_file=ca_file, cert_file=device.cert,
                  key_file=device.key, **options)


def test_kiosk_and_terminal_check_in_over_mutual_tls(secure_broker, devices, tmp_path):
    """The kiosk's link and the reference terminal over the generated config: every leaf they use passes."""
    pki = Pki()
    terminal = ReferenceTerminal(_tls_broker(secure_broker.port, devices.ca.ca_file, devices.terminal), site="s1",
                                 name="mtls")
    commands = []
    contexts = []
    link = KioskLink("s1", "r1", _tls_broker(secure_broker.port, devices.ca.ca_file, devices.r1),
                     Outbox(tmp_path / "outbox.sqlite3"), on_command=lambda command: commands.append(command),
                     on_context=lambda session, answer: contexts.append((session, answer)))
    terminal.start()
    link.start()
    try:
        assert terminal.wait_connected(WAIT_S) and link.wait_connected(WAIT_S)
        assert terminal.wait_for(lambda view: view.statuses.get("s1/r1") == "online", WAIT_S)
        assert wait_until(lambda: link.challenges_ready >= 1, WAIT_S)  # challenge_request → challenge
        holder = pki.holder()
        link.request_context("visit-1", holder.cert_der, "card")  # context_request → context
        assert wait_until(lambda: contexts, WAIT_S) and contexts[0][0] == "visit-1"
        result = pin_result(holder, link.take_challenge())
        answers = {}
        link.on_answer = lambda result_id, ack: answers.setdefault(result_id, ack)
        link.publish_result(result)  # result → ack
        assert link.wait_flushed(WAIT_S)
        assert wait_until(lambda: result.id in answers, WAIT_S)
        assert (answers[result.id].verified, answers[result.id].eligibility) == (True, Eligibility.VALID)
        sent = terminal.send_command("s1", "r1", CommandName.VISUAL_OK)  # cmd → reply
        assert terminal.wait_for(lambda view: sent.id in view.replies_by_command, WAIT_S)
        assert terminal.view.replies_by_command[sent.id].ok and [c.id for c in commands] == [sent.id]
        assert terminal.view.broker_problem is None and not terminal.view.errors
    finally:
        link.stop()
        terminal.stop()
        link.outbox.close()


def test_a_reader_taking_the_terminals_client_id_reads_nothing_and_no_result_is_lost(secure_broker, devices,
                                                                                      tmp_path, probe):
    """mosquitto's acl_file does not bind client ids to certificates, so a reader can resume the
    terminal's session: the ACL still refuses it every queued result, and the kiosk's resend (until
    the terminal's ack) delivers the result once the real terminal is back."""
    pki = Pki()
    terminal_broker = _tls_broker(secure_broker.port, devices.ca.ca_file, devices.terminal)
    terminal = ReferenceTerminal(terminal_broker, site="s1", name="hijacked")
    terminal.start()
    assert terminal.wait_connected(WAIT_S)
    terminal.stop()  # its session (and subscriptions) stay at the broker
    watcher = probe(devices.terminal)
    watcher.subscribe(topic("s1", "r2", "result"))
    link = KioskLink("s1", "r2", _tls_broker(secure_broker.port, devices.ca.ca_file, devices.r2),
                     Outbox(tmp_path / "outbox.sqlite3"))
    link.start()
    try:
        assert link.wait_connected(WAIT_S)
        result = pin_result(pki.holder(), None, reader="r2")
        link.publish_result(result)
        # routed by the broker, so also queued for the terminal's session
        assert wait_until(lambda: watcher.got(topic("s1", "r2", "result")), WAIT_S)
        thief = probe(devices.r1, client_id="uketsuke-terminal-s1-hijacked", session_expiry_s=3600)
        thief.subscribe(topic("s1", "r1", "status"))
        assert thief.publish(topic("s1", "r1", "status"), b"marker", qos=1) == 0  # after any queued delivery
        assert wait_until(lambda: thief.got(topic("s1", "r1", "status"), b"marker"), WAIT_S)
        assert not any(t.endswith("/result") for t, _ in thief.messages)
        thief.close()
        again = ReferenceTerminal(terminal_broker, site="s1", name="hijacked")
        again.start()
        try:
            assert link.wait_flushed(3 * WAIT_S)  # resent with backoff until the real terminal acked it
            assert again.wait_for(lambda view: result.id in view.acknowledged, WAIT_S)
        finally:
            again.stop()
    finally:
        link.stop()
        link.outbox.close()


def _count_failures(link: KioskLink) -> list[str]:
    """Every failed connect attempt the link's sender hears of (paho retries with backoff)."""
    seen: list[str] = []
    trouble = link._trouble

    def counting(name: str):
        original = getattr(trouble, name)

        def counted(*args):
            seen.append(name)
            return original(*args)
        return counted

    for name in ("connect_failed", "closed_before_connack"):
        setattr(trouble, name, counting(name))
    return seen


def test_the_kiosk_reports_one_clear_problem_when_tls_fails(secure_broker, devices):
    """A wrong CA file, a certificate the broker does not trust, no certificate: one staff line each,
    said once however often paho retries."""
    cases = {
        "untrusted broker": (_tls_broker(secure_broker.port, devices.other_ca.ca_file, devices.impostor_r1),
                             "is not trusted"),
        "certificate from another CA": (_tls_broker(secure_broker.port, devices.ca.ca_file, devices.impostor_r1),
                                        "refused our device certificate"),  # with its alert or without
        "no certificate": (Broker(host="127.0.0.1", port=secure_broker.port, ca_file=devices.ca.ca_file),
                           "requires a device certificate"),
    }
    runs = []
    for name, (broker, expected) in cases.items():
        reports: list[tuple[str, str | None]] = []
        link = KioskLink("s1", "r1", broker, Outbox(":memory:"),
                         report=lambda key, text, blocking, reports=reports: reports.append((key, text)))
        runs.append((name, expected, link, reports, _count_failures(link)))
        link.start()
    try:
        for name, expected, link, reports, failures in runs:
            assert wait_until(lambda failures=failures: len(failures) >= 2, WAIT_S), name  # paho tried again
            lines = [text for key, text in reports if key == "broker"]
            assert len(lines) == 1 and expected in lines[0], (name, lines)
            assert not link.connected
    finally:
        for _, _, link, _, _ in runs:
            link.stop()


def test_selftest_probe_says_what_is_wrong(secure_broker, devices):
    """``uketsuke selftest``'s broker row: one connection as the kiosk makes it, and the fix."""
    port = secure_broker.port
    ok, detail = probe_broker(_tls_broker(port, devices.ca.ca_file, devices.r1), "s1", "r1")
    assert ok and "mutual TLS, as reader.s1.r1" in detail
    ok, detail = probe_broker(_tls_broker(port, devices.ca.ca_file, devices.impostor_r1), "s1", "r1")
    assert not ok and "refused our device certificate" in detail
    ok, detail = probe_broker(_tls_broker(port, devices.other_ca.ca_file, devices.r1), "s1", "r1")
    assert not ok and "is not trusted" in detail
    ok, detail = probe_broker(_tls_broker(port, devices.ca.ca_file, devices.r1), "s1", "r2")
    assert not ok and "issued to 'reader.s1.r1'" in detail  # a config error, before any connection
    ok, detail = probe_broker(Broker(port=free_port(), insecure_local=True), "s1", "r1")
    assert not ok and "unreachable" in detail and "systemctl status mosquitto" in detail


def test_an_oversize_result_in_the_outbox_is_parked_not_sent_into_a_disconnect_loop(secure_broker, devices,
                                                                                     tmp_path):
    """The broker drops a client sending more than max_packet_size, and paho resends an unacknowledged
    QoS 1 publish on every reconnect: the kiosk must never send one (an old outbox row may be that big)."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put("oversize-1", topic("s1", "r1", "result"), b"{" + b" " * MAX_PACKET_BYTES + b"}")
    reports: dict[str, str | None] = {}
    link = KioskLink("s1", "r1", _tls_broker(secure_broker.port, devices.ca.ca_file, devices.r1), outbox,
                     report=lambda key, text, blocking: reports.__setitem__(key, text))
    link.start()
    try:
        assert link.wait_flushed(WAIT_S) and link.wait_connected(WAIT_S)
        assert [row[0] for row in outbox.parked()] == ["oversize-1"]
        assert "cannot be sent" in reports["result-parked"] and "limit" in reports["result-parked"]
        assert link.connected  # still on the broker: nothing too large was sent
    finally:
        link.stop()
        outbox.close()
