import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import MessageError
from firmware.link.outbox import Outbox
from firmware.link.schemas import Command, CommandName, Method, ResultMessage, command_id, parse, topic

CERT = base64.b64encode(b"\x30\x82\x01\x00fake").decode()


def result(**overrides) -> ResultMessage:
    fields = dict(site="s1", reader="r1", method=Method.PIN, card_kind="card", cert_der_b64=CERT,
                  cert_status="valid")
    fields.update(overrides)
    return ResultMessage(**fields)


def test_topics():
    assert topic("clinic", "reader-01", "result") == "uketsuke/v1/clinic/reader-01/result"


def test_result_round_trip():
    message = result(consent={"PharmacistsInfo": {"flag": 1, "time": "2025-02-01T01:02:03Z"}}, face_score=0.61,
                     face_threshold=0.41)
    again = parse(ResultMessage, message.to_json())
    assert again == message and again.v == 1


@pytest.mark.parametrize("field", ["my_number", "pin", "face_image", "photo"])
def test_result_cannot_carry_personal_fields(field):
    payload = json.loads(result().to_json())
    payload[field] = "123456789018"
    with pytest.raises(MessageError, match="a field this version does not know") as caught:
        parse(ResultMessage, json.dumps(payload).encode())
    assert field not in str(caught.value)  # the sender's own text is never echoed


@pytest.mark.parametrize("payload, limit", [
    (b"[" * 1000 + b"]" * 1000, "nests deeper"),
    (b'{"id": "' + b"x" * 20000 + b'"}', "the limit is"),
    (b'{"id": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "cmd": "ping"}', "id"),  # brackets in strings do not count
])
def test_limits_come_before_the_parser(payload, limit):
    with pytest.raises(MessageError, match=limit) as caught:
        parse(Command, payload)
    assert "xxxx" not in str(caught.value)


def test_command_ids_are_restricted_because_replies_echo_them():
    assert command_id(b'{"id": "ok-1.2:3", "cmd": 1}') == "ok-1.2:3"
    assert command_id(b'{"id": "<script>", "cmd": 1}') == ""
    assert command_id(b"[" * 5000) == ""


def test_bad_payloads_are_typed_errors():
    for payload in (b"", b"{", b"[]", b'{"cmd": "reboot"}', b"\xff\xfe", json.dumps({"cmd": "ping", "v": 2}).encode()):
        with pytest.raises(MessageError):
            parse(Command, payload)
    with pytest.raises(MessageError, match="base64"):
        parse(ResultMessage, json.dumps({**json.loads(result().to_json()), "cert_der_b64": "***"}).encode())


@settings(max_examples=500)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_command_parser_never_crashes(payload):
    try:
        parse(Command, payload)
    except MessageError:
        pass
    assert isinstance(command_id(payload), str)


def test_command_id_recovered_from_malformed_command():
    assert command_id(json.dumps({"id": "abc", "cmd": "nope"}).encode()) == "abc"
    assert command_id(b"not json") == ""
    assert parse(Command, Command(cmd=CommandName.PING).to_json()).cmd is CommandName.PING


def test_outbox_survives_reopen_and_is_idempotent(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    box.put("a", "t/result", b"1")
    box.put("b", "t/result", b"2")
    box.put("a", "t/result", b"1")
    box.close()
    box = Outbox(path)
    assert [p.id for p in box.pending()] == ["a", "b"]
    box.mark_attempt("a")
    box.remove("a")
    assert [(p.id, p.payload) for p in box.pending()] == [("b", b"2")]
    assert len(box) == 1
    box.close()


def test_terminal_describes_a_result_whose_certificate_is_garbage():
    from terminal.app import describe_result

    line = describe_result(result(cert_der_b64=base64.b64encode(b"\x30\x03\xa0\x01\x05").decode()))
    assert "(certificate does not parse)" in line and "[s1/r1] pin card" in line


def test_client_ids_are_unique_per_process_and_listen_keeps_a_stable_one():
    """Shared client ids knocked kiosks (and terminal send vs listen) off the broker once a second."""
    from firmware.config import Broker
    from firmware.link.mqtt import KioskLink
    from firmware.link.outbox import Outbox
    from terminal.app import ReferenceTerminal

    plain = Broker(insecure_local=True)
    ids = [KioskLink("s", "r", plain, Outbox(":memory:"))._client._client_id for _ in range(2)]
    assert ids[0] != ids[1] and all(i.startswith(b"uketsuke-s-r-") for i in ids)
    senders = [ReferenceTerminal(plain, site="s", name=None)._client._client_id for _ in range(2)]
    listeners = [ReferenceTerminal(plain, site="s")._client._client_id for _ in range(2)]
    assert senders[0] != senders[1] and listeners[0] == listeners[1] and listeners[0] not in senders
