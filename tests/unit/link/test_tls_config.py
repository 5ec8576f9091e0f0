"""The link's TLS settings: every mistake is one ConfigError line naming the key; right ones build a
context that checks the broker (its CA only, its host name, TLS 1.2+) and carries the device certificate."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware.config import Broker, parse_config
from firmware.errors import ConfigError
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.tls import (
    ConnectTrouble,
    classify_connect_error,
    client_credentials,
    is_local_host,
    reader_identity,
)
from terminal.app import ReferenceTerminal
from tests.device_pki import DeviceCa


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return DeviceCa(tmp_path_factory.mktemp("device-ca"))


@pytest.fixture(scope="module")
def reader(ca):
    return ca.issue(reader_identity("s1", "r1"))


def mtls(ca, device, **options) -> Broker:
    return Broker(host="broker.clinic.example", port=8883, ca_file=ca.ca_file, cert_file=device.cert,
                  key_file=device.key, **options)


def refused(broker: Broker, match: str, **options) -> str:
    with pytest.raises(ConfigError, match=match) as caught:
        client_credentials(broker, **options)
    line = str(caught.value)
    assert "\n" not in line and len(line) < 400
    return line


def test_mutual_tls_context_trusts_only_the_site_ca_and_checks_the_host(ca, reader):
    credentials = client_credentials(mtls(ca, reader))
    context = credentials.tls
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    (trusted,) = context.get_ca_certs()  # no system roots: only the site CA
    assert ("commonName", "uketsuke TEST device CA") in [pair for rdn in trusted["subject"] for pair in rdn]
    assert credentials.identity == "reader.s1.r1"


def test_ca_only_tls_is_allowed_for_password_brokers(ca, tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    credentials = client_credentials(Broker(host="broker.example", ca_file=ca.ca_file, username="kiosk",
                                            password_file=password))
    assert credentials.tls is not None and (credentials.username, credentials.password) == ("kiosk", "s3cret")


def test_no_tls_settings_are_refused_unless_insecure_local():
    line = refused(Broker(), "TLS is required")
    assert "broker.ca_file" in line and "insecure_local" in line
    assert client_credentials(Broker(insecure_local=True)).tls is None


@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                         ("localhost", True), ("192.168.1.10", False), ("broker.lan", False)])
def test_insecure_local_means_this_machine_only(host, local):
    assert is_local_host(host) is local
    if local:
        assert client_credentials(Broker(host=host, insecure_local=True)).tls is None
    else:
        refused(Broker(host=host, insecure_local=True), "this machine only")


def test_insecure_local_with_tls_settings_still_uses_tls(ca, reader):
    assert client_credentials(mtls(ca, reader, insecure_local=True)).tls is not None


def test_a_certificate_needs_its_key_and_the_reverse(ca, reader):
    refused(Broker(ca_file=ca.ca_file, cert_file=reader.cert), "broker.cert_file is set without broker.key_file")
    refused(Broker(ca_file=ca.ca_file, key_file=reader.key), "broker.key_file is set without broker.cert_file")


def test_a_certificate_without_a_ca_is_refused(reader):
    refused(Broker(cert_file=reader.cert, key_file=reader.key), "need broker.ca_file")
    refused(Broker(cert_file=reader.cert, key_file=reader.key, insecure_local=True), "need broker.ca_file")


@pytest.mark.parametrize("key", ["ca_file", "cert_file", "key_file", "password_file"])
def test_an_unreadable_file_names_its_key(ca, reader, tmp_path, key):
    missing = tmp_path / "nowhere" / "file.pem"
    options = {"username": "kiosk"} if key == "password_file" else {}
    line = refused(mtls(ca, reader, **options).model_copy(update={key: missing}), f"broker.{key}: cannot read")
    assert str(missing) in line


def test_a_directory_is_not_a_ca_file(ca, reader, tmp_path):
    refused(mtls(ca, reader).model_copy(update={"ca_file": tmp_path}), "broker.ca_file: cannot read")


def test_files_that_hold_the_wrong_thing(ca, reader, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM at all\n")
    refused(mtls(ca, reader).model_copy(update={"ca_file": junk}), "broker.ca_file: .* holds no PEM certificate")
    refused(mtls(ca, reader).model_copy(update={"cert_file": junk}), "broker.cert_file: .* holds no PEM certificate")
    refused(mtls(ca, reader).model_copy(update={"key_file": junk}), "broker.key_file: .* is not a PEM private key")
    refused(mtls(ca, reader).model_copy(update={"key_file": reader.cert}), "broker.key_file: .* not a PEM private key")


def test_a_key_that_does_not_match_its_certificate(ca, reader):
    other = ca.issue("reader.s1.r9")
    line = refused(mtls(ca, reader).model_copy(update={"key_file": other.key}), "is not the key of broker.cert_file")
    assert str(reader.cert) in line


def test_an_encrypted_key_is_refused_with_the_reason(ca, reader, tmp_path):
    key = serialization.load_pem_private_key(reader.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))
    refused(mtls(ca, reader).model_copy(update={"key_file": encrypted}), "is encrypted")


def test_password_file_rules(ca, reader, tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret")
    refused(mtls(ca, reader, password_file=password), "password_file is set without broker.username")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    refused(mtls(ca, reader, username="kiosk", password_file=empty), "password_file: .* is empty")


def test_the_kiosk_refuses_a_certificate_issued_to_another_reader(ca, tmp_path):
    other = ca.issue(reader_identity("s1", "r2"))
    with pytest.raises(ConfigError, match="issued to 'reader.s1.r2', but this device is 'reader.s1.r1'"):
        KioskLink("s1", "r1", mtls(ca, other), Outbox(":memory:"))
    KioskLink("s1", "r2", mtls(ca, other), Outbox(":memory:"))  # its own reader: fine


def test_kiosk_and_terminal_share_the_rules():
    with pytest.raises(ConfigError, match="TLS is required"):
        KioskLink("s1", "r1", Broker(), Outbox(":memory:"))
    with pytest.raises(ConfigError, match="TLS is required"):
        ReferenceTerminal(Broker(), site="s1")


def test_insecure_local_is_a_config_key():
    assert parse_config({"broker": {"insecure_local": True}}).broker.insecure_local is True
    assert parse_config({}).broker.insecure_local is False


def test_the_cli_says_a_tls_mistake_in_one_line(ca, reader, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[broker]\nca_file = "{ca.ca_file}"\ncert_file = "{reader.cert}"\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}  # this checkout's code
    proc = subprocess.run([sys.executable, "-m", "provisioning.cli", "terminal", "send", "r1", "ping", "--config",
                           str(config)], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "uketsuke: error: broker.cert_file is set without broker.key_file: mutual TLS needs both the device "
        "certificate and its key"]


@pytest.mark.parametrize("text, after_handshake, cause, says", [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain",
     False, "untrusted-broker", "is not trusted: its certificate is not from broker.ca_file"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate is not valid",
     False, "host-mismatch", "is not for broker.clinic.example"),
    ("failed to receive on socket: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required",
     True, "certificate-required", "requires a device certificate"),
    ("failed to receive on socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca",
     True, "certificate-refused", "refused our device certificate"),
    # the alert lost to the broker's reset: the same cause, guessed from when it happened
    ("failed to receive on socket: EOF occurred in violation of protocol (_ssl.c:2427)",
     True, "certificate-refused", "refused our device certificate"),
    ("", True, "certificate-refused", "refused our device certificate"),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number", False, "no-tls-listener", "the broker's TLS listener"),
    ("[Errno 104] Connection reset by peer", False, "no-tls-listener", "the broker's TLS listener"),
    ("[Errno 113] No route to host", False, "other", "cannot connect to broker.clinic.example:8883"),
])
def test_connect_errors_read_as_the_fix(ca, reader, text, after_handshake, cause, says):
    got_cause, line = classify_connect_error(text, mtls(ca, reader), after_handshake=after_handshake)
    assert (got_cause, says in line) == (cause, True), line
    assert "\n" not in line


def test_a_broker_hanging_up_on_a_client_without_a_certificate_says_so(ca):
    no_certificate = Broker(host="broker.example", ca_file=ca.ca_file)
    assert classify_connect_error("", no_certificate, after_handshake=True)[0] == "certificate-required"


def test_connect_trouble_is_said_once_per_cause(ca, reader):
    trouble = ConnectTrouble(mtls(ca, reader))
    untrusted = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    first = trouble.connect_failed(untrusted)
    assert first and "not trusted" in first
    assert trouble.connect_failed(untrusted) is None  # paho's retry: nothing new to say
    assert trouble.connect_failed(ConnectionRefusedError(111, "Connection refused")) is None  # logged, not a problem
    trouble.log_error("failed to receive on socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    second = trouble.closed_before_connack()
    assert second and "refused our device certificate" in second
    trouble.log_error("failed to receive on socket: EOF occurred in violation of protocol")
    assert trouble.closed_before_connack() is None  # the same cause with its alert lost: not said again
    assert trouble.closed_before_connack() is None
    assert trouble.reported == second
    trouble.connected()
    assert trouble.reported is None
    assert trouble.connect_failed(untrusted) == first  # after a good connection, a new failure is said again


def test_without_tls_a_broker_going_away_is_not_a_problem():
    trouble = ConnectTrouble(Broker(insecure_local=True))
    assert trouble.connect_failed(ConnectionResetError(104, "Connection reset by peer")) is None
    trouble.log_error("failed to receive on socket: [Errno 104] Connection reset by peer")
    assert trouble.closed_before_connack() is None and trouble.reported is None
