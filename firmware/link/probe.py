"""One connection attempt to the broker, as the kiosk would make it, for ``uketsuke selftest``.

It checks everything the kiosk's link needs before a technician walks away: the ``[broker]``
settings (:func:`firmware.link.tls.client_credentials`), the TCP connection, the TLS handshake both
ways and the broker's CONNACK. Nothing is published or subscribed. The answer is a line that says
what is wrong and how to fix it (:func:`firmware.link.tls.explain_connect_error`).
"""

from __future__ import annotations

import secrets
import time

import paho.mqtt.client as mqtt

from firmware.config import Broker
from firmware.errors import ConfigError
from firmware.link.tls import (
    client_credentials,
    explain_connect_error,
    is_tls_error,
    reader_identity,
    watch_errors,
)


def probe_broker(broker: Broker, site: str, reader: str, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Connect once as reader ``site/reader`` and disconnect: (ok, what a technician reads)."""
    where = f"{broker.host}:{broker.port}"
    try:
        credentials = client_credentials(broker, expected_identity=reader_identity(site, reader))
    except ConfigError as exc:
        return False, str(exc)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"uketsuke-selftest-{secrets.token_hex(4)}",
                         protocol=mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311)
    credentials.apply(client)
    errors: list[str] = []  # paho's MQTT_LOG_ERR lines: how a refused device certificate shows
    outcome: list[tuple[bool, str]] = []
    client.on_connect = lambda c, u, f, code, p: outcome.append(
        (not code.is_failure, "accepted" if not code.is_failure else f"refused: {code}"))
    client.on_disconnect = lambda c, u, f, code, p: outcome.append((False, f"closed ({code})"))
    watch_errors(client, errors.append)
    try:
        client.connect(broker.host, broker.port, keepalive=broker.keepalive_s)
    except OSError as exc:  # refused, unreachable, or our check of the broker's certificate failed
        if is_tls_error(exc):
            return False, explain_connect_error(str(exc), broker)
        return False, f"{where} unreachable ({exc.strerror or exc}); is mosquitto running? systemctl status mosquitto"
    deadline = time.monotonic() + timeout_s
    try:
        while not outcome and time.monotonic() < deadline:
            client.loop(timeout=0.2)
    finally:
        client.disconnect()
    if not outcome:
        return False, f"{where} accepted the connection but did not answer as an MQTT broker within {timeout_s:.0f} s"
    ok, what = outcome[0]
    if ok:
        how = "mutual TLS" if broker.cert_file else ("TLS" if credentials.tls else "plain (insecure_local)")
        return True, f"{where} accepts us ({how}{', as ' + credentials.identity if credentials.identity else ''})"
    if credentials.tls is not None and not what.startswith("refused"):  # hung up before CONNACK
        return False, explain_connect_error(errors[-1] if errors else "", broker, after_handshake=True)
    return False, f"{where} {what}"
