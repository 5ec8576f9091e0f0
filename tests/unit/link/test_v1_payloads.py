"""Payloads the kiosk and the terminal of before sent (v1, before the contracts were tightened).

``v1_payloads.json`` was written by the models as they stood at a69097a (the outbox of a kiosk
updated in place may still hold such results, and a retained status survives any update). Each
must still parse, and come out the same on the wire.
"""

import json
from pathlib import Path

import pytest

from firmware.link.limits import MAX_RESULT_BYTES
from firmware.link.schemas import MESSAGES, ResultMessage, parse

PAYLOADS = json.loads((Path(__file__).parent / "v1_payloads.json").read_text())


def leaf_of(name: str) -> str:
    """The topic leaf of a saved payload's name (``result_face`` → ``result``; the longest leaf wins)."""
    return max((leaf for leaf in MESSAGES if name == leaf or name.startswith(leaf + "_")), key=len)


def model_of(name: str):
    return MESSAGES[leaf_of(name)]


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_a_v1_payload_of_before_still_parses(name):
    payload = json.dumps(PAYLOADS[name]).encode()
    message = parse(model_of(name), payload, MAX_RESULT_BYTES)
    assert message.v == 1
    if name != "result_consent_bools":  # the bools of #9 read as flags: the one payload that changes form
        assert json.loads(message.to_json()) == PAYLOADS[name]


def test_consent_as_bare_booleans_reads_as_flags():
    message = parse(ResultMessage, json.dumps(PAYLOADS["result_consent_bools"]).encode())
    assert {key: item.flag for key, item in message.consent.items()} == {"PharmacistsInfo": 1, "DiagnosisInfo": 0}
