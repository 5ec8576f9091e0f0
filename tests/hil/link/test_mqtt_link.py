"""The kiosk link against a real mosquitto: delivery, broker down at start, broker restart,
malformed commands. Nothing is lost; nothing crashes."""

import base64
import json
import time

import paho.mqtt.client as mqtt
import pytest

from firmware.config import Broker
from firmware.errors import CommandRefused
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.schemas import CommandName, Method, ResultMessage, topic

pytestmark = pytest.mark.hil

CERT = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()


def result() -> ResultMessage:
    return ResultMessage(site="s1", reader="r1", method=Method.NONE, card_kind="card",
                         cert_der_b64=CERT, cert_status="valid")


@pytest.fixture
def link_factory(tmp_path):
    links = []

    def make(port, on_command=None):
        link = KioskLink("s1", "r1", Broker(port=port, keepalive_s=5, insecure_local=True),
                         Outbox(tmp_path / "outbox.sqlite3"),
                         on_command=on_command)
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop()
        link.outbox.close()



def test_result_reaches_terminal_and_leaves_outbox(mosquitto, link_factory, terminal_factory):
    terminal = terminal_factory(mosquitto.port)
    link = link_factory(mosquitto.port)
    link.start()
    assert link.wait_connected(10)
    message = result()
    link.publish_result(message)
    assert terminal.wait_for(lambda v: [r.id for r in v.results] == [message.id], 10)
    assert link.wait_flushed(10) and len(link.outbox) == 0
    assert terminal.wait_for(lambda v: v.statuses.get("s1/r1") == "online", 5)


def test_broker_down_at_start_queues_until_it_comes_up(mosquitto, link_factory, terminal_factory):
    mosquitto.stop()
    link = link_factory(mosquitto.port)
    link.start()  # must not raise
    message = result()
    link.publish_result(message)
    assert link.pending == 1 and not link.connected
    mosquitto.start()
    terminal = terminal_factory(mosquitto.port)
    assert link.wait_connected(20)
    assert terminal.wait_for(lambda v: any(r.id == message.id for r in v.results), 15)
    assert link.wait_flushed(10)


def test_broker_restart_loses_nothing(mosquitto, link_factory, terminal_factory):
    link = link_factory(mosquitto.port)
    link.start()
    assert link.wait_connected(10)
    mosquitto.stop()
    deadline = time.monotonic() + 10
    while link.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = [result() for _ in range(3)]
    for message in sent:
        link.publish_result(message)
    assert link.pending == 3
    mosquitto.start()
    terminal = terminal_factory(mosquitto.port)
    assert terminal.wait_for(lambda v: {r.id for r in v.results} >= {m.id for m in sent}, 25)
    assert link.wait_flushed(10)


def test_outbox_survives_a_kiosk_restart(mosquitto, tmp_path, terminal_factory):
    mosquitto.stop()
    first = KioskLink("s1", "r1", Broker(port=mosquitto.port, insecure_local=True), Outbox(tmp_path / "o.sqlite3"))
    first.start()
    message = result()
    first.publish_result(message)
    first.stop()  # stored on the way down, never sent: the broker was down
    first.outbox.close()
    mosquitto.start()
    terminal = terminal_factory(mosquitto.port)
    second = KioskLink("s1", "r1", Broker(port=mosquitto.port, insecure_local=True), Outbox(tmp_path / "o.sqlite3"))
    second.start()
    try:
        assert terminal.wait_for(lambda v: any(r.id == message.id for r in v.results), 15)
        assert second.wait_flushed(10)
    finally:
        second.stop()
        second.outbox.close()


def test_commands_and_malformed_json_get_replies(mosquitto, link_factory, terminal_factory):
    seen = []

    def on_command(command):
        seen.append(command.cmd)
        if command.cmd == CommandName.VISUAL_OK:
            raise CommandRefused("not in this state")
        return {"state": "idle"}

    link = link_factory(mosquitto.port, on_command)
    link.start()
    assert link.wait_connected(10)
    terminal = terminal_factory(mosquitto.port)
    time.sleep(0.2)
    ping = terminal.send_command("s1", "r1", CommandName.PING)
    refused = terminal.send_command("s1", "r1", CommandName.VISUAL_OK)
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    raw.connect("127.0.0.1", mosquitto.port)
    raw.loop_start()
    raw.publish(topic("s1", "r1", "cmd"), b'{"id": "broken-1", "cmd": ', qos=1).wait_for_publish(5)
    raw.publish(topic("s1", "r1", "cmd"), json.dumps({"id": "bad-2", "cmd": "self_destruct"}), qos=1).wait_for_publish(5)
    raw.loop_stop()
    raw.disconnect()
    assert terminal.wait_for(lambda v: len(v.replies) >= 4, 10)
    replies = {r.id: r for r in terminal.view.replies}
    assert replies[ping.id].ok and replies[ping.id].detail == {"state": "idle"}
    assert not replies[refused.id].ok and "not in this state" in replies[refused.id].error
    assert not replies[""].ok and "invalid Command" in replies[""].error
    assert not replies["bad-2"].ok and "cmd" in replies["bad-2"].error
    assert seen == [CommandName.PING, CommandName.VISUAL_OK]
    # the link is still alive after the garbage
    message = result()
    link.publish_result(message)
    assert terminal.wait_for(lambda v: any(r.id == message.id for r in v.results), 10)
