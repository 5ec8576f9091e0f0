"""The kiosk's side of the link: paho-mqtt, the durable outbox, commands in, replies out.

paho stays inside this package (nothing above sees its return codes). The link never blocks the
flow: a broker that is down at start or restarts later only delays delivery; results wait in the
outbox and go out on reconnect.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from firmware.config import Broker
from firmware.errors import MessageError
from firmware.link.outbox import Outbox
from firmware.link.schemas import (
    Command,
    EventMessage,
    Reply,
    ResultMessage,
    StatusMessage,
    command_id,
    parse,
    topic,
)

log = logging.getLogger(__name__)

CommandHandler = Callable[[Command], dict[str, Any] | None]


class KioskLink:
    """Publishes status, events and results for one reader; receives the terminal's commands."""

    def __init__(self, site: str, reader: str, broker: Broker, outbox: Outbox,
                 on_command: CommandHandler | None = None, software: str = ""):
        self.site, self.reader, self.broker, self.outbox = site, reader, broker, outbox
        self.on_command = on_command
        self.software = software
        self._inflight: dict[int, str] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = False
        self._flushed = threading.Condition()
        protocol = mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"uketsuke-{site}-{reader}", protocol=protocol,
        )
        offline = StatusMessage(reader=reader, state="offline", software=software)
        self._client.will_set(self.topic("status"), offline.to_json(), qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if broker.username:
            password = broker.password_file.read_text().strip() if broker.password_file else None
            self._client.username_pw_set(broker.username, password)
        if broker.ca_file:
            self._client.tls_set(
                ca_certs=str(broker.ca_file),
                certfile=str(broker.cert_file) if broker.cert_file else None,
                keyfile=str(broker.key_file) if broker.key_file else None,
            )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    def topic(self, leaf: str) -> str:
        return topic(self.site, self.reader, leaf)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background; a broker that is down now is retried until it is up."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        """Say goodbye (retained offline status), then disconnect. Pending results stay in the outbox."""
        self._stopping = True
        if self.connected:
            offline = StatusMessage(reader=self.reader, state="offline", software=self.software)
            info = self._client.publish(self.topic("status"), offline.to_json(), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_flushed(self, timeout_s: float) -> bool:
        """Block until the outbox is empty (every result acknowledged) or the timeout passes."""
        with self._flushed:
            return self._flushed.wait_for(lambda: len(self.outbox) == 0, timeout_s)

    # ------------------------------------------------------------------ publishing

    def publish_result(self, result: ResultMessage) -> None:
        """Store the result durably, then send it if connected (else on reconnect)."""
        self.outbox.put(result.id, self.topic("result"), result.to_json())
        if self.connected:
            self._send(result.id, self.topic("result"), result.to_json())

    def publish_event(self, state: str, detail: str = "") -> None:
        """Best-effort progress for staff screens; dropped while offline."""
        if self.connected:
            event = EventMessage(reader=self.reader, state=state, detail=detail)
            self._client.publish(self.topic("event"), event.to_json(), qos=0)

    def _send(self, message_id: str, topic_name: str, payload: bytes) -> None:
        with self._lock:
            info = self._client.publish(topic_name, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._inflight[info.mid] = message_id
                self.outbox.mark_attempt(message_id)
            else:
                log.info("result %s queued: not connected (%s)", message_id, mqtt.error_string(info.rc))

    def _flush(self) -> None:
        for pending in self.outbox.pending():
            self._send(pending.id, pending.topic, pending.payload)

    # ------------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s:%d refused the connection: %s", self.broker.host, self.broker.port, reason_code)
            return
        log.info("connected to broker %s:%d", self.broker.host, self.broker.port)
        self._connected.set()
        online = StatusMessage(reader=self.reader, state="online", software=self.software)
        client.publish(self.topic("status"), online.to_json(), qos=1, retain=True)
        client.subscribe(self.topic("cmd"), qos=1)
        self._flush()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._stopping:
            log.warning("lost the broker (%s); results wait in the outbox", reason_code)
        self._connected.clear()
        with self._lock:
            self._inflight.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            message_id = self._inflight.pop(mid, None)
        if message_id is None:
            return
        if reason_code.is_failure:
            log.warning("broker rejected result %s: %s", message_id, reason_code)
            return
        self.outbox.remove(message_id)
        with self._flushed:
            self._flushed.notify_all()

    def _on_message(self, client, userdata, message) -> None:
        try:
            command = parse(Command, message.payload)
        except MessageError as exc:
            log.warning("bad command on %s: %s", message.topic, exc)
            self._reply(Reply(id=command_id(message.payload), ok=False, error=str(exc)))
            return
        try:
            detail = self.on_command(command) if self.on_command else None
        except Exception as exc:  # a command must never take the link down; the terminal hears why
            log.warning("command %s failed: %s", command.cmd, exc)
            self._reply(Reply(id=command.id, ok=False, error=f"{type(exc).__name__}: {exc}"))
            return
        self._reply(Reply(id=command.id, ok=True, detail=detail or {}))

    def _reply(self, reply: Reply) -> None:
        self._client.publish(self.topic("reply"), reply.to_json(), qos=1)
