"""Every field of every link message is bounded and typed, so none can become a side channel.

The first test walks each message's JSON Schema (the one ``make schemas`` exports): every string has a
maxLength (or is an enum/const), every array a maxItems, every number a range, and no object takes
properties it does not name (a map must name its keys by enum and have a maxProperties).

The others put what must never travel — the 12-digit number (plain or as printed), or a blob the size
of a photo or an embedding — into every string of a real payload of each message, and show that the
model refuses it, without echoing it. The base64 fields are bytes by design (``BY_DESIGN``): any
base64 text fits them, but never more than their documented bound (``B64_LIMITS``).
"""

import base64
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.errors import MessageError
from firmware.link.limits import MAX_RESULT_BYTES
from firmware.link.schemas import B64_LIMITS, MESSAGES, parse

PAYLOADS = json.loads((Path(__file__).parent / "v1_payloads.json").read_text())
#: Base64 fields: bytes by design (certificate, nonce, signatures, CVC), each with its bound.
BY_DESIGN = {"cert_der_b64": B64_LIMITS["cert"], "nonce_b64": B64_LIMITS["nonce"],
             "signature_b64": B64_LIMITS["signature"], "genuineness_b64": B64_LIMITS["signature"],
             "cvc_b64": B64_LIMITS["cvc"]}


def leaf_of(name: str) -> str:
    return max((leaf for leaf in MESSAGES if name == leaf or name.startswith(leaf + "_")), key=len)


# ---------------------------------------------------------------------------------------- the schemas


def unbounded(schema: dict, defs: dict, where: str = "$") -> list[str]:
    """Where ``schema`` lets a value grow without bound (a list of JSON paths with the reason)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return unbounded(defs[name], defs, f"{where}<{name}>")
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for index, sub in enumerate(schema.get(key, [])):
            found += unbounded(sub, defs, f"{where}/{key}{index}")
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else (kinds or [])
    fixed = "enum" in schema or "const" in schema
    if "string" in kinds and not fixed and "maxLength" not in schema:
        found.append(f"{where}: a string without maxLength")
    if ("integer" in kinds or "number" in kinds) and not fixed and not {"minimum", "maximum"} <= schema.keys():
        found.append(f"{where}: a number without minimum and maximum")
    if "array" in kinds:
        if "maxItems" not in schema:
            found.append(f"{where}: an array without maxItems")
        if "items" in schema:
            found += unbounded(schema["items"], defs, f"{where}[]")
    if "object" in kinds:
        extra = schema.get("additionalProperties", True)
        if extra is True:
            found.append(f"{where}: an object that takes any property")
        elif isinstance(extra, dict):
            names = schema.get("propertyNames", {})
            if "enum" not in names and "maxLength" not in names:
                found.append(f"{where}: a map whose keys are not named")
            if "maxProperties" not in schema:
                found.append(f"{where}: a map without maxProperties")
            found += unbounded(extra, defs, f"{where}{{}}")
        for name, sub in schema.get("properties", {}).items():
            found += unbounded(sub, defs, f"{where}.{name}")
    return found


@pytest.mark.parametrize("leaf", sorted(MESSAGES))
def test_every_field_of_every_message_is_bounded(leaf):
    schema = MESSAGES[leaf].model_json_schema()
    assert unbounded(schema, schema.get("$defs", {})) == []


def test_the_walker_finds_what_is_unbounded():
    defs = {"Args": {"type": "object", "additionalProperties": True}}
    schema = {"type": "object", "additionalProperties": False, "properties": {
        "a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "c": {"$ref": "#/$defs/Args"}, "d": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "e": {"anyOf": [{"type": "string", "pattern": "^x$"}, {"type": "null"}]},
        "ok": {"type": "string", "enum": ["x"]}}}
    assert unbounded(schema, defs) == [
        "$.a: a string without maxLength", "$.b: an array without maxItems",
        "$.b[]: a number without minimum and maximum", "$.c<Args>: an object that takes any property",
        "$.d: a map whose keys are not named", "$.d: a map without maxProperties",
        "$.e/anyOf0: a string without maxLength",
    ]


# ---------------------------------------------------------------------------------------- the payloads


def string_slots(node, path=()):
    """Every place in a JSON value that holds a string: ``(path, is_key)`` pairs."""
    if isinstance(node, str):
        yield path, False
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from string_slots(item, path + (index,))
    elif isinstance(node, dict):
        for key, item in node.items():
            yield path + (key,), True
            yield from string_slots(item, path + (key,))


def put(payload, path, is_key: bool, value: str):
    """A copy of ``payload`` with the string at ``path`` (or the key naming it) replaced by ``value``."""
    payload = json.loads(json.dumps(payload))
    *parents, last = path
    node = payload
    for step in parents:
        node = node[step]
    if is_key:
        node[value] = node.pop(last)
    else:
        node[last] = value
    return payload


SLOTS = [(name, path, is_key) for name in sorted(PAYLOADS) for path, is_key in string_slots(PAYLOADS[name])]
FREE = [slot for slot in SLOTS if slot[1][-1] not in BY_DESIGN or slot[2]]
B64 = [slot for slot in SLOTS if slot[1][-1] in BY_DESIGN and not slot[2]]


def test_the_payloads_reach_every_string_field_of_every_message():
    reached = {(leaf_of(name), next(step for step in path if isinstance(step, str)))
               for name, path, is_key in SLOTS if not is_key}
    for leaf, model in MESSAGES.items():
        for field, info in model.model_fields.items():
            if "str" in repr(info.annotation) or field == "ts":
                assert (leaf, field) in reached, f"v1_payloads.json has no {leaf} with {field}"


digits = st.text(alphabet="0123456789", min_size=12, max_size=12)
NUMBERS = st.one_of(
    digits,
    digits.map(lambda d: f"{d[:4]} {d[4:8]} {d[8:]}"),  # as printed on the card
    digits.map(lambda d: f"{d[:4]}-{d[4:8]}-{d[8:]}"),
    st.tuples(st.sampled_from(["", "a", "x-", "個人番号 ", "number: "]), digits,
              st.sampled_from(["", "z", "-1", " (card)"])).map("".join),  # inside other text
)
BLOBS = st.binary(min_size=768, max_size=24_000).map(lambda b: base64.b64encode(b).decode())  # 1–32 KB


def refused(name: str, payload: dict, value: str) -> bool:
    try:
        parse(MESSAGES[leaf_of(name)], json.dumps(payload, ensure_ascii=False).encode(), MAX_RESULT_BYTES)
    except MessageError as exc:
        assert value not in str(exc)  # never echoed
        return True
    return False


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FREE), NUMBERS | BLOBS)
def test_no_free_field_takes_the_number_or_a_blob(slot, value):
    name, path, is_key = slot
    assert refused(name, put(PAYLOADS[name], path, is_key, value), value), (name, path, value[:40])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(B64), st.integers(0, 8000))
def test_base64_fields_take_bytes_only_up_to_their_bound(slot, extra):
    name, path, _ = slot
    limit = BY_DESIGN[path[-1]]
    size = limit + 1 + extra
    too_big = base64.b64encode(b"\0" * (size * 3 // 4 + 3)).decode()[:size // 4 * 4 + 4]
    assert len(too_big) > limit
    assert refused(name, put(PAYLOADS[name], path, False, too_big), too_big)
    not_base64 = "1234 5678 9012"  # the number as printed: spaces are not base64
    assert refused(name, put(PAYLOADS[name], path, False, not_base64), not_base64)


@pytest.mark.parametrize("field, limit", sorted(BY_DESIGN.items()))
def test_no_base64_field_is_large_enough_for_a_photo_or_an_embedding(field, limit):
    """The card photo the kiosk compares with is ~10 KB JPEG; a 512-float embedding 2 KB (as float32)."""
    assert limit * 3 // 4 <= 6 * 1024
    if field != "cert_der_b64":  # the certificate is parsed as X.509 by the terminal; the rest is smaller
        assert limit * 3 // 4 < 2048
