"""The generated production broker files: the options mosquitto needs, and an ACL that gives each
device exactly its own topics (the wire tests, tests/hil/link/test_tls_acl.py, run mosquitto on them)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest
from typer.testing import CliRunner

from firmware.link import mqtt as kiosk_link
from firmware.link.limits import MAX_RESULT_BYTES
from firmware.link.schemas import MESSAGES
from firmware.link.topics import SENT_BY, reader_reads, terminal_reads
from provisioning.broker_config import MAX_PACKET_BYTES, SiteBroker, acl, mosquitto_conf
from provisioning.cli import app
from terminal import app as terminal_app

LAYOUT = SiteBroker(site="clinic-7", readers=("front", "back"))


def users(text: str) -> dict[str, list[tuple[str, str]]]:
    """``user`` → its (access, topic) lines; anything before the first user goes under None."""
    blocks: dict = {None: []}
    current = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        if kind == "user":
            current = rest
            blocks[current] = []
        else:
            assert kind == "topic", line  # no pattern lines: explicit per device
            access, topic_name = rest.split(" ")
            blocks[current].append((access, topic_name))
    return blocks


def test_every_leaf_has_one_sender_and_both_ends_subscribe_as_the_acl_allows():
    assert set(SENT_BY) == set(MESSAGES)
    assert set(kiosk_link._SUBSCRIBED) == set(reader_reads())
    assert set(terminal_app._MODELS) | set(terminal_app._REQUESTS) == set(terminal_reads())


def test_conf_has_a_mutual_tls_listener_and_the_limits():
    conf = mosquitto_conf(LAYOUT)
    lines = set(conf.splitlines())
    for line in ("allow_anonymous false", "require_certificate true", "use_identity_as_username true",
                 "tls_version tlsv1.2", "listener 8883", "persistence true", "acl_file /etc/mosquitto/uketsuke/acl",
                 "cafile /etc/mosquitto/uketsuke/certs/ca.crt", "certfile /etc/mosquitto/uketsuke/certs/broker.crt",
                 "keyfile /etc/mosquitto/uketsuke/certs/broker.key", f"max_packet_size {MAX_PACKET_BYTES}"):
        assert line in lines, line
    assert MAX_RESULT_BYTES < MAX_PACKET_BYTES <= MAX_RESULT_BYTES + 2048
    assert "allow_anonymous true" not in conf and "crlfile" not in conf
    with_crl = mosquitto_conf(SiteBroker(site="s", readers=("r",), crl_file=PurePosixPath("/etc/ca/site.crl")))
    assert "crlfile /etc/ca/site.crl" in with_crl.splitlines()


def test_each_reader_gets_only_its_own_topics():
    blocks = users(acl(LAYOUT))
    assert blocks[None] == []  # nothing for anonymous clients
    assert set(blocks) == {None, "reader.clinic-7.front", "reader.clinic-7.back", "terminal.clinic-7"}
    for reader in ("front", "back"):
        lines = blocks[f"reader.clinic-7.{reader}"]
        own = f"uketsuke/v1/clinic-7/{reader}/"
        assert all(topic_name.startswith(own) and "+" not in topic_name.removesuffix("/reply/+")
                   and "#" not in topic_name for _, topic_name in lines), lines
        writes = {t.removeprefix(own) for access, t in lines if "write" in access}
        reads = {t.removeprefix(own) for access, t in lines if "read" in access}
        assert writes == {"status", "event", "result", "reply", "reply/+", "challenge_request", "context_request",
                          "registration_request"}
        assert reads == {"cmd", "ack", "status", "challenge", "context", "registration"}
        assert not writes & {"cmd", "ack", "challenge", "context", "registration"}  # cannot forge visual_ok


def test_the_terminal_commands_and_answers_every_reader_of_its_site():
    lines = users(acl(LAYOUT))["terminal.clinic-7"]
    writes = {t for access, t in lines if access == "write"}
    assert writes == {f"uketsuke/v1/clinic-7/+/{leaf}" for leaf in ("cmd", "ack", "challenge", "context",
                                                                     "registration")}
    reads = {t for access, t in lines if access == "read"}
    assert "uketsuke/v1/clinic-7/+/result" in reads and "uketsuke/v1/clinic-7/+/reply/+" in reads
    assert not any(access == "readwrite" for access, _ in lines)


def test_terminal_names_can_be_given():
    blocks = users(acl(SiteBroker(site="s", readers=("r",), terminals=("terminal.s.front", "terminal.s.back"))))
    assert {"terminal.s.front", "terminal.s.back"} <= set(blocks) and "terminal.s" not in blocks


@pytest.mark.parametrize("options, says", [
    ({"site": "bad site"}, "site id 'bad site'"),
    ({"readers": ()}, "at least one reader"),
    ({"readers": ("r1", "r1")}, "given twice"),
    ({"readers": ("r/1",)}, "reader id 'r/1'"),
    ({"readers": ("123456789012",)}, "not 12 digits"),
    ({"terminals": ("terminal s",)}, "terminal CN 'terminal s'"),
    ({"terminals": ("terminal\nuser x",)}, "terminal CN"),
    ({"terminals": ("reader.s.r1",)}, "a reader's name"),
    ({"ca_file": PurePosixPath("relative/ca.crt")}, "absolute path"),
    ({"install_dir": PurePosixPath("/etc/with space")}, "absolute path"),
    ({"log_dest": "file relative.log"}, "log_dest"),
    ({"port": 0}, "port"),
])
def test_bad_input_is_refused_with_the_reason(options, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        SiteBroker(**({"site": "s", "readers": ("r1",)} | options))


def test_the_command_writes_both_files(tmp_path):
    result = CliRunner().invoke(app, ["link", "broker-config", "--site", "s1", "--reader", "r1", "--reader", "r2",
                                      "--out", str(tmp_path / "broker"), "--port", "8884"])
    assert result.exit_code == 0, result.output
    assert "listener 8884" in (tmp_path / "broker" / "mosquitto.conf").read_text().splitlines()
    assert set(users((tmp_path / "broker" / "acl").read_text())) == {None, "reader.s1.r1", "reader.s1.r2",
                                                                     "terminal.s1"}
    bad = CliRunner().invoke(app, ["link", "broker-config", "--site", "s1", "--reader", "r 1",
                                   "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
