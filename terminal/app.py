"""The reference eligibility terminal: listens to every reader of a site and shows what arrives.

It stands in for the clinic's 資格確認端末 in demos and tests. It validates each payload with the
same pydantic contracts as the kiosk (a broken message is reported, never crashes it), and prints
one line per result. Staff commands (start, cancel, visual_ok, …) go out with :meth:`send_command`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from firmware.card.certificate import AuthCertificate, CertificateError
from firmware.config import Broker
from firmware.errors import MessageError
from firmware.link.schemas import (
    TOPIC_ROOT,
    Command,
    CommandName,
    EventMessage,
    Reply,
    ResultMessage,
    StatusMessage,
    parse,
    topic,
)

log = logging.getLogger(__name__)

_MODELS = {"status": StatusMessage, "event": EventMessage, "result": ResultMessage, "reply": Reply}


@dataclass
class TerminalView:
    """What the terminal has seen, for tests and the console view."""

    results: list[ResultMessage] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    events: list[EventMessage] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def describe_result(result: ResultMessage) -> str:
    """One human line for a result (certificate subject, status, method) — no personal data."""
    import base64

    try:
        subject = AuthCertificate(base64.b64decode(result.cert_der_b64)).subject
    except CertificateError:
        subject = "(certificate does not parse)"
    score = f" score={result.face_score:.3f}/{result.face_threshold:.3f}" if result.face_score is not None else ""
    return (f"[{result.site}/{result.reader}] {result.method.value} {result.card_kind} "
            f"cert={result.cert_status.value} subject={subject}{score} id={result.id}")


class ReferenceTerminal:
    def __init__(self, broker: Broker, site: str = "+", printer: Callable[[str], None] | None = None):
        self.broker = broker
        self.site = site
        self.view = TerminalView()
        self.printer = printer
        self._seen_ids: set[str] = set()
        self._changed = threading.Condition()
        protocol = mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"uketsuke-terminal-{site}".replace("+", "all"),
                                   protocol=protocol)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._connected = threading.Event()

    def start(self) -> None:
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_for(self, predicate: Callable[[TerminalView], bool], timeout_s: float) -> bool:
        """Block until ``predicate(view)`` holds (tests, scripted demos)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.view), timeout_s)

    def send_command(self, site: str, reader: str, name: CommandName, **args) -> Command:
        command = Command(cmd=name, args=args)
        self._client.publish(topic(site, reader, "cmd"), command.to_json(), qos=1)
        return command

    def _say(self, line: str) -> None:
        if self.printer:
            self.printer(line)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the terminal: %s", reason_code)
            return
        for leaf in _MODELS:
            client.subscribe(f"{TOPIC_ROOT}/{self.site}/+/{leaf}", qos=1)
        self._connected.set()

    def _on_message(self, client, userdata, message) -> None:
        parts = message.topic.split("/")
        leaf = parts[-1]
        model = _MODELS.get(leaf)
        if model is None or len(parts) != 5:
            return
        try:
            parsed = parse(model, message.payload)
        except MessageError as exc:
            self.view.errors.append(f"{message.topic}: {exc}")
            self._say(f"[{parts[2]}/{parts[3]}] rejected a malformed {leaf}: {exc}")
        else:
            self._record(parts[2], parts[3], parsed)
        with self._changed:
            self._changed.notify_all()

    def _record(self, site: str, reader: str, parsed) -> None:
        if isinstance(parsed, ResultMessage):
            if parsed.id in self._seen_ids:  # a resend after reconnect: already handled
                return
            self._seen_ids.add(parsed.id)
            self.view.results.append(parsed)
            self._say(describe_result(parsed))
        elif isinstance(parsed, StatusMessage):
            self.view.statuses[f"{site}/{reader}"] = parsed.state
            self._say(f"[{site}/{reader}] {parsed.state}")
        elif isinstance(parsed, EventMessage):
            self.view.events.append(parsed)
        elif isinstance(parsed, Reply):
            self.view.replies.append(parsed)
