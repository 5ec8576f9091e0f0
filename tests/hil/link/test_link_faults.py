"""The link through faults, over a real mosquitto: concurrent publishing, a terminal that is away,
an outbox that cannot be written or is corrupt, hostile commands, a refused result, two kiosks on
one reader id. Each of these hung, lost results or died before the runtime-core rework."""

import base64
import json
import threading
import time

import paho.mqtt.client as mqtt
import psutil
import pytest

from firmware.config import Broker
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.schemas import CommandName, Method, ResultMessage, topic
from tests.services import wait_until

pytestmark = pytest.mark.hil

CERT = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()


def result() -> ResultMessage:
    return ResultMessage(site="s1", reader="r1", method=Method.NONE, card_kind="card",
                         cert_der_b64=CERT, cert_status="valid")


class Reports:
    """The kiosk's problem registry, as the link sees it."""

    def __init__(self):
        self.current: dict[str, tuple[str, bool]] = {}
        self.history: list[tuple[str, str | None]] = []

    def __call__(self, key, text, blocking):
        self.history.append((key, text))
        if text is None:
            self.current.pop(key, None)
        else:
            self.current[key] = (text, blocking)



@pytest.fixture
def make_link(tmp_path):
    links = []

    def make(port, *, path=None, on_command=None, reports=None, reader="r1", outbox=None):
        link = KioskLink("s1", reader, Broker(port=port, keepalive_s=5, insecure_local=True),
                         outbox if outbox is not None else Outbox(path or tmp_path / f"outbox-{len(links)}.sqlite3"),
                         on_command=on_command, report=reports)
        link.resend_min_s = 0.3
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop()
        link.outbox.close()



def test_a_thousand_results_from_several_threads_do_not_hang(no_thread_leaks, mosquitto, make_link, terminal_factory):
    """The old link held its lock across paho's publish while paho's thread took it in on_publish."""
    terminal = terminal_factory(mosquitto.port)
    link = make_link(mosquitto.port)
    link.start()
    assert link.wait_connected(10)
    sent: list[str] = []

    def publisher():
        for _ in range(250):
            message = result()
            sent.append(message.id)
            link.publish_result(message)

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "publish_result blocked"
    assert terminal.wait_for(lambda v: {r.id for r in v.results} == set(sent), 120)
    assert link.wait_flushed(60) and len(link.outbox) == 0 and link.acknowledged == 1000


def test_terminal_offline_while_results_are_published(mosquitto, make_link, terminal_factory):
    """Deleted on PUBACK, the old outbox lost every result published while the terminal was away."""
    first = terminal_factory(mosquitto.port)
    first.stop()  # the terminal goes away; its persistent session stays at the broker
    link = make_link(mosquitto.port)
    link.start()
    assert link.wait_connected(10)
    sent = [result() for _ in range(5)]
    for message in sent:
        link.publish_result(message)
    time.sleep(1.0)  # PUBACKs arrive (the broker took them), acks cannot: nobody is there
    assert link.pending == 5 and wait_until(lambda: len(link.outbox) == 5)
    terminal = terminal_factory(mosquitto.port)
    assert terminal.wait_for(lambda v: {r.id for r in v.results} == {m.id for m in sent}, 20)
    assert link.wait_flushed(20) and len(link.outbox) == 0
    assert len(terminal.view.results) == 5  # resends were deduplicated


def test_terminal_that_never_connected_gets_results_by_resend(mosquitto, make_link, terminal_factory):
    link = make_link(mosquitto.port)
    link.start()
    assert link.wait_connected(10)
    message = result()
    link.publish_result(message)
    time.sleep(0.8)  # no subscriber anywhere: the broker dropped it
    terminal = terminal_factory(mosquitto.port, name="late")
    assert terminal.wait_for(lambda v: [r.id for r in v.results] == [message.id], 20)
    assert link.wait_flushed(10)


def test_unwritable_outbox_keeps_results_in_memory_and_says_so(mosquitto, make_link, terminal_factory, tmp_path):
    reports = Reports()
    outbox = Outbox(tmp_path / "ro.sqlite3")
    link = make_link(mosquitto.port, reports=reports, outbox=outbox)
    link.write_retry_min_s = 0.2
    outbox._db.execute("PRAGMA query_only=1")  # every write now fails as on a read-only SD card
    link.start()
    assert link.wait_connected(10)
    message = result()
    link.publish_result(message)
    assert wait_until(lambda: "outbox-write" in reports.current)
    assert reports.current["outbox-write"][1] is True  # blocking: the kiosk goes out of service
    assert link.pending == 1 and len(outbox) == 0
    outbox._db.execute("PRAGMA query_only=0")  # the card is writable again
    assert wait_until(lambda: "outbox-write" not in reports.current, 10)
    terminal = terminal_factory(mosquitto.port)
    assert terminal.wait_for(lambda v: [r.id for r in v.results] == [message.id], 20)
    assert link.wait_flushed(10)


def test_unwritable_outbox_still_delivers_from_memory(mosquitto, make_link, terminal_factory, tmp_path):
    terminal = terminal_factory(mosquitto.port)
    outbox = Outbox(tmp_path / "ro.sqlite3")
    outbox._db.execute("PRAGMA query_only=1")
    reports = Reports()
    link = make_link(mosquitto.port, reports=reports, outbox=outbox)
    link.start()
    assert link.wait_connected(10)
    message = result()
    link.publish_result(message)
    assert terminal.wait_for(lambda v: [r.id for r in v.results] == [message.id], 20)
    assert link.wait_flushed(10)
    assert "outbox-write" in reports.current  # delivered, but the disk is still read-only: staff must know
    link.write_retry_min_s = 0.2
    outbox._db.execute("PRAGMA query_only=0")
    assert wait_until(lambda: "outbox-write" not in reports.current, 40)  # the probe saw the disk come back


def test_corrupt_outbox_is_moved_aside_and_a_fresh_one_started(mosquitto, make_link, tmp_path):
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database, it is a power cut" * 100)
    reports = Reports()
    link = make_link(mosquitto.port, path=path, reports=reports)
    link.start()
    aside = list(tmp_path.glob("outbox.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "outbox" in reports.current and aside[0].name in reports.current["outbox"][0]
    link.publish_result(result())
    assert wait_until(lambda: len(link.outbox) == 1)


def _raw_client(port):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


@pytest.mark.parametrize("retain", [False, True], ids=["plain", "retained"])
def test_hostile_commands_do_not_kill_the_link(mosquitto, make_link, terminal_factory, retain):
    """A 2 KB command nested 1000 deep ended paho's thread (RecursionError); 40 MB took 1 GB."""
    seen = []
    raw = _raw_client(mosquitto.port)
    deep = b'{"id": "deep", "cmd": "ping", "args": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    huge = b'{"id": "huge", "cmd": "ping", "args": {"x": "' + b"A" * (40 * 1024 * 1024) + b'"}}'
    echo = b'{"id": "echo", "cmd": "<script>steal()</script>"}'
    for payload in (deep, huge, echo):
        raw.publish(topic("s1", "r1", "cmd"), payload, qos=1, retain=retain).wait_for_publish(30)
    terminal = terminal_factory(mosquitto.port)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    link = make_link(mosquitto.port, on_command=lambda c: seen.append(c.cmd) or {"state": "idle"})
    link.start()  # a retained poison command arrives now, at start
    assert link.wait_connected(10)
    if not retain:
        for payload in (deep, huge, echo):
            raw.publish(topic("s1", "r1", "cmd"), payload, qos=1).wait_for_publish(30)
    time.sleep(1.0)
    ping = terminal.send_command("s1", "r1", CommandName.PING)
    assert terminal.wait_for(lambda v: any(r.id == ping.id and r.ok for r in v.replies), 10)
    message = result()
    link.publish_result(message)
    assert terminal.wait_for(lambda v: any(r.id == message.id for r in v.results), 10)
    assert seen == [CommandName.PING]  # none of the hostile ones ran
    for reply in terminal.view.replies:
        assert "script" not in (reply.error or "") and "AAAA" not in reply.model_dump_json()
    if not retain:
        errors = {r.id: r.error for r in terminal.view.replies if not r.ok}
        assert "nests deeper" in errors.get("", "") or any("nests deeper" in e for e in errors.values())
        assert "echo" in errors and "cmd" in errors["echo"]
    assert process.memory_info().rss - rss_before < 200 * 1024 * 1024
    raw.publish(topic("s1", "r1", "cmd"), b"", qos=1, retain=True).wait_for_publish(5)  # clear the retained one
    raw.loop_stop()
    raw.disconnect()


def test_result_refused_by_the_broker_is_parked_not_retried(tmp_path, make_link):
    """An ACL that forbids the result topic: PUBACK 'not authorized' parks the result and says so."""
    from tests.services import Mosquitto

    (tmp_path / "acl-broker").mkdir()
    broker = Mosquitto(tmp_path / "acl-broker")
    acl = tmp_path / "acl-broker" / "acl"
    acl.write_text("topic readwrite uketsuke/v1/s1/r1/status\ntopic read uketsuke/v1/s1/r1/#\n"
                   "topic write uketsuke/v1/s1/r1/event\n")
    broker.config.write_text(broker.config.read_text() + f"acl_file {acl}\n")
    broker.start()
    try:
        reports = Reports()
        link = make_link(broker.port, reports=reports)
        link.start()
        assert link.wait_connected(10)
        message = result()
        link.publish_result(message)
        assert link.wait_flushed(10)  # parked: nothing more to wait for
        assert "result-parked" in reports.current
        assert [row[0] for row in link.outbox.parked()] == [message.id] and len(link.outbox) == 0
    finally:
        broker.stop()


def test_two_kiosks_with_one_reader_id_are_both_told(mosquitto, make_link):
    """With one client id, they knocked each other off the broker once a second ('Unspecified error')."""
    first_reports, second_reports = Reports(), Reports()
    first = make_link(mosquitto.port, reports=first_reports)
    first.start()
    assert first.wait_connected(10)
    second = make_link(mosquitto.port, reports=second_reports)
    second.start()
    assert second.wait_connected(10)
    assert wait_until(lambda: "reader-id" in first_reports.current and "reader-id" in second_reports.current)
    disconnects = []
    first._client.on_disconnect = lambda *a: disconnects.append(a)
    time.sleep(1.5)
    assert first.connected and second.connected and not disconnects  # nobody is knocked off
    second.stop()
    assert wait_until(lambda: "reader-id" not in first_reports.current)


def test_reply_ids_and_errors_never_echo_the_sender(mosquitto, make_link, terminal_factory):
    link = make_link(mosquitto.port, on_command=lambda c: {})
    link.start()
    assert link.wait_connected(10)
    terminal = terminal_factory(mosquitto.port)
    raw = _raw_client(mosquitto.port)
    raw.publish(topic("s1", "r1", "cmd"), json.dumps({"id": "x" * 60 + "<b>", "cmd": "ping"}), qos=1).wait_for_publish(5)
    raw.publish(topic("s1", "r1", "cmd"), json.dumps({"id": "ok-1", "cmd": "ping", "evil<i>": 1}),
                qos=1).wait_for_publish(5)
    raw.loop_stop()
    raw.disconnect()
    assert terminal.wait_for(lambda v: len(v.replies) >= 2, 10)
    for reply in terminal.view.replies:
        assert not reply.ok and "<" not in reply.model_dump_json()
