"""The link's MQTT 5 contract against a real mosquitto: replies on the command's response topic with
its correlation data, and the retained status with its last will."""

import json
import queue
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.config import Broker
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.schemas import Command, CommandName, Reply, StatusMessage, parse, topic

pytestmark = pytest.mark.hil


@pytest.fixture
def kiosk(mosquitto, tmp_path):
    link = KioskLink("s1", "r1", Broker(port=mosquitto.port, keepalive_s=5, insecure_local=True),
                     Outbox(tmp_path / "outbox.sqlite3"),
                     on_command=lambda command: {"state": "idle"})
    link.start()
    assert link.wait_connected(10)
    yield link
    link.stop()
    link.outbox.close()


@pytest.fixture
def client(mosquitto):
    """``client(*topics)``: a raw MQTT 5 client subscribed to ``topics``; its messages on ``.messages``."""
    clients = []

    def make(*topics):
        raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        raw.messages = queue.Queue()
        raw.on_message = lambda c, u, message: raw.messages.put(message)
        subscribed = queue.Queue()
        raw.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(mid)
        raw.connect("127.0.0.1", mosquitto.port)
        raw.loop_start()
        clients.append(raw)
        if topics:
            raw.subscribe([(name, 1) for name in topics])
            subscribed.get(timeout=10)
        return raw

    yield make
    for raw in clients:
        raw.disconnect()
        raw.loop_stop()


def command(raw, payload: bytes, response_topic: str | None, correlation: bytes | None) -> None:
    properties = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        properties.ResponseTopic = response_topic
    if correlation is not None:
        properties.CorrelationData = correlation
    raw.publish(topic("s1", "r1", "cmd"), payload, qos=1, properties=properties).wait_for_publish(5)


def next_message(raw, timeout_s: float = 10.0):
    return raw.messages.get(timeout=timeout_s)


def test_the_reply_goes_to_the_response_topic_with_the_same_correlation_data(kiosk, client):
    mine = topic("s1", "r1", "reply") + "/staff-7"
    raw = client(mine, topic("s1", "r1", "reply"))
    ping = Command(cmd=CommandName.PING)
    command(raw, ping.to_json(), mine, b"\x00\x01corr-\xff")
    message = next_message(raw)
    assert message.topic == mine
    assert message.properties.CorrelationData == b"\x00\x01corr-\xff"
    reply = parse(Reply, message.payload)
    assert reply.id == ping.id and reply.ok and reply.detail == {"state": "idle"}

    # A command whose payload is unreadable (no id to echo) is still correlated by its properties.
    command(raw, b'{"id": "broken-1", "cmd": ', mine, b"corr-2")
    message = next_message(raw)
    assert (message.topic, message.properties.CorrelationData) == (mine, b"corr-2")
    assert parse(Reply, message.payload).id == "" and not parse(Reply, message.payload).ok


@pytest.mark.parametrize("response_topic", [
    topic("s1", "r2", "reply"),  # another reader's
    topic("s1", "r1", "result"),  # our own, but not a reply topic
    topic("s1", "r1", "reply") + "/a/b",  # more than one level under it
    topic("s1", "r1", "reply") + "/#",
])
def test_a_response_topic_that_is_not_ours_is_not_used(kiosk, client, response_topic):
    raw = client("uketsuke/v1/#")  # sees wherever the reply goes
    command(raw, Command(cmd=CommandName.PING).to_json(), response_topic, b"c")
    replies = []
    while not replies:
        message = next_message(raw)
        if "/reply" in message.topic:
            replies.append(message)
    time.sleep(0.3)  # a second reply, on the topic it named, would have arrived by now
    replies += [m for m in iter_queue(raw.messages) if "/reply" in m.topic]
    assert [m.topic for m in replies] == [topic("s1", "r1", "reply")]
    assert replies[0].properties.CorrelationData == b"c"


def iter_queue(messages: queue.Queue):
    while True:
        try:
            yield messages.get_nowait()
        except queue.Empty:
            return


def test_oversized_correlation_data_is_not_echoed(kiosk, client):
    raw = client(topic("s1", "r1", "reply"))
    ping = Command(cmd=CommandName.PING)
    command(raw, ping.to_json(), topic("s1", "r1", "reply"), b"x" * 65)
    message = next_message(raw)
    assert parse(Reply, message.payload).id == ping.id
    assert not hasattr(message.properties, "CorrelationData")


def test_without_properties_the_payload_id_still_correlates(kiosk, client):
    """What a 3.1.1 terminal (or the terminal of before) does: no response topic, no correlation data."""
    raw = client(topic("s1", "r1", "reply"))
    ping = Command(cmd=CommandName.PING)
    raw.publish(topic("s1", "r1", "cmd"), ping.to_json(), qos=1).wait_for_publish(5)
    message = next_message(raw)
    assert message.topic == topic("s1", "r1", "reply") and parse(Reply, message.payload).id == ping.id
    assert not hasattr(message.properties, "CorrelationData")


def test_the_reference_terminal_matches_replies_by_correlation_data(kiosk, terminal_factory, mosquitto):
    terminal = terminal_factory(mosquitto.port)
    sent = terminal.send_command("s1", "r1", CommandName.PING)
    assert terminal.wait_for(lambda view: sent.id in view.replies_by_command, 10)
    assert terminal.view.replies_by_command[sent.id].detail == {"state": "idle"}


def test_status_is_retained_online_and_the_last_will_is_a_retained_offline(mosquitto, kiosk, client):
    # A subscriber that comes after the kiosk said it is online gets that status as a retained
    # message (the kiosk's first status may still be on its way: then ask again, as a late client).
    deadline = time.monotonic() + 10
    while True:
        late = client(topic("s1", "r1", "status"))
        message = next_message(late)
        if message.retain or time.monotonic() > deadline:
            break
    status = parse(StatusMessage, message.payload)
    assert message.retain and (status.state, status.instance) == ("online", kiosk.instance)

    # The kiosk vanishes without a DISCONNECT (power cut): the broker publishes the will
    # (after any status update the kiosk sent before it vanished).
    kiosk._client.loop_stop()
    kiosk._client.socket().close()
    will = parse(StatusMessage, next_message(late, 20).payload)
    while will.state != "offline":
        will = parse(StatusMessage, next_message(late, 20).payload)
    assert (will.state, will.instance) == ("offline", kiosk.instance)
    again = client(topic("s1", "r1", "status"))
    message = next_message(again)
    assert message.retain and json.loads(message.payload)["state"] == "offline"
    kiosk._connected.clear()  # so that stop() does not say goodbye over a dead socket
