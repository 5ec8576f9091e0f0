"""A reference terminal without a broker, for unit tests: paho's client is replaced by a recorder and
messages are handed to ``_on_message`` as paho's thread would."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from firmware.config import Broker
from firmware.link.schemas import Method, ResultMessage, topic
from terminal.app import ReferenceTerminal


class RecordingClient:
    """Stands in for paho's client: keeps what was published."""

    def __init__(self):
        self.published: list[tuple[str, bytes]] = []

    def publish(self, where, payload, qos=0, properties=None, **_):
        self.published.append((where, payload))

    def on(self, leaf: str) -> list[bytes]:
        return [payload for where, payload in self.published if where.endswith("/" + leaf)]


def offline_terminal(**options) -> ReferenceTerminal:
    terminal = ReferenceTerminal(Broker(insecure_local=True), site="s1", **options)
    terminal._client = RecordingClient()
    return terminal


def deliver(terminal: ReferenceTerminal, leaf: str, message, site: str = "s1", reader: str = "r1",
            correlation: bytes | None = None) -> None:
    payload = message if isinstance(message, bytes) else message.to_json()
    terminal._on_message(None, None, SimpleNamespace(topic=topic(site, reader, leaf), payload=payload,
                                                     properties=SimpleNamespace(CorrelationData=correlation)))


def visual_result(site: str = "s1", reader: str = "r1", **fields) -> ResultMessage:
    """A staff-checked (目視確認) result: no proof, a certificate only."""
    base = {"site": site, "reader": reader, "method": Method.VISUAL, "card_kind": "card",
            "cert_der_b64": base64.b64encode(b"not a certificate").decode(), "cert_status": "valid"}
    return ResultMessage(**(base | fields))
