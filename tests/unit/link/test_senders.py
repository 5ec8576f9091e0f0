"""What the kiosk sends always fits the contracts: texts are made safe, codes fall back to ``other``,
command arguments are checked per command, and a reply goes only to our own reply topics."""

import json
import typing

import pytest
from pydantic import ValidationError

from firmware import config
from firmware.config import Broker, Config
from firmware.errors import MessageError
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.schemas import (
    COMMAND_ARGS,
    LANGUAGES,
    Command,
    CommandName,
    EventMessage,
    Reply,
    StatusMessage,
    event_code,
    parse,
    safe_text,
    topic,
)


def test_safe_text_is_one_bounded_line_with_the_number_masked():
    assert safe_text("card 1234 5678 9012 read\nagain\x00") == "card ############## read again "
    assert safe_text("x" * 500) == "x" * 240
    assert StatusMessage(reader="r", state="online", problems=[safe_text("id 123456789012")]).problems == [
        "id ############"]


@pytest.mark.parametrize("state, detail, sent", [
    ("failed", "CardRemoved", ("failed", "CardRemoved")),
    ("out_of_service", "outbox-write", ("out_of_service", "outbox-write")),
    ("visual_wanted", "proxy", ("visual_wanted", "proxy")),
    ("failed", "Pn532Error", ("failed", "other")),  # digits: not a code
    ("failed", "card 123456789012", ("failed", "other")),
    ("Reading!", "", ("other", "")),
])
def test_event_codes(state, detail, sent):
    assert event_code(state, detail) == sent
    EventMessage(reader="r", state=sent[0], detail=sent[1])


def test_every_flow_state_is_an_event_state():
    from firmware.flow.checkin import CheckInFlow

    assert all(event_code(state)[0] == state for state in CheckInFlow.states_map)


@pytest.fixture
def link():
    return KioskLink("s1", "r1", Broker(insecure_local=True), Outbox(":memory:"))


def test_publish_event_never_raises_and_sends_codes_only(link):
    link.publish_event("failed", "oops: 1234-5678-9012\n")
    kind, payload = link._work.get_nowait()
    assert kind == "event" and json.loads(payload)["detail"] == "other"


def test_status_problems_are_made_safe(link):
    link._problems = ["outbox: /var/123456789012/x\nmore"]
    assert parse(StatusMessage, link._status("online").to_json()).problems == ["outbox: /var/############/x more"]


@pytest.mark.parametrize("asked, goes_to", [
    (None, "reply"),
    ("uketsuke/v1/s1/r1/reply", "reply"),
    ("uketsuke/v1/s1/r1/reply/staff-page.1", "reply/staff-page.1"),
    ("uketsuke/v1/s1/r2/reply", "reply"),
    ("uketsuke/v1/s1/r1/reply/a/b", "reply"),
    ("uketsuke/v1/s1/r1/reply/+", "reply"),
    ("uketsuke/v1/s1/r1/replyx", "reply"),
    ("uketsuke/v1/s1/r1/cmd", "reply"),
])
def test_replies_go_only_to_our_own_reply_topics(link, asked, goes_to):
    assert link._response_to(asked, b"c") == (topic("s1", "r1", goes_to), b"c")


def test_long_correlation_data_is_not_echoed(link):
    assert link._response_to(None, b"x" * 64)[1] == b"x" * 64
    assert link._response_to(None, b"x" * 65)[1] is None


def test_an_answer_outside_the_reply_contract_is_an_error_reply(link):
    sent = []
    link._reply = lambda reply, where=None, correlation=None: sent.append(reply)
    link.on_command = lambda command: {"photo": "..."}
    link._run_command(Command(cmd=CommandName.PING).to_json(), 0)
    assert not sent[0].ok and "reply contract" in sent[0].error


def test_command_arguments_are_checked_per_command():
    assert Command(cmd=CommandName.SET_LANGUAGE, args={"language": "en"}).args == {"language": "en"}
    for name, args in [(CommandName.SET_LANGUAGE, {}), (CommandName.SET_LANGUAGE, {"language": "xx"}),
                       (CommandName.PING, {"language": "en"}), (CommandName.CANCEL, {"force": True})]:
        with pytest.raises(ValidationError):
            Command(cmd=name, args=args)
    with pytest.raises(MessageError, match="a field this version does not know"):
        parse(Command, b'{"cmd": "ping", "args": {"note": "1234 5678 9012"}}')
    schema = Command.model_json_schema()
    assert [rule["if"]["properties"]["cmd"].get("const") for rule in schema["allOf"]][:-1] == [
        name.value for name in COMMAND_ARGS]


def test_reply_details_are_closed():
    assert Reply(id="a", ok=True, detail={"state": "idle", "pending_results": 3}).detail == {
        "state": "idle", "pending_results": 3}
    for detail in ({"photo": "x"}, {"pending_results": -1}, {"state": "Idle 123456789012"}):
        with pytest.raises(ValidationError):
            Reply(id="a", ok=True, detail=detail)


def test_the_config_and_the_contracts_agree():
    assert typing.get_args(config.Language) == LANGUAGES
    for bad in ("123456789012", "1234-5678-9012"):
        with pytest.raises(ValidationError, match="individual number"):
            Config(reader_id=bad)
    assert Config(site_id="1312345678", reader_id="reader-01").site_id == "1312345678"  # a 10-digit clinic code


def test_a_cosine_of_one_with_float_rounding_is_one():
    import numpy as np

    from tests.unit.foundation.test_link_contracts import result

    assert result(face_score=float(np.float32(1.0000001)), face_threshold=0.41).face_score == 1.0
    assert result(face_score=np.float64(0.5)).face_score == 0.5
    for bad in (1.01, float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            result(face_score=bad)
