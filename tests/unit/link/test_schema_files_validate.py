"""The exported JSON Schema files are what a clinic's own software would check our payloads with.

A JSON Schema validator (not pydantic) reads ``docs/schemas/``: every file is a valid 2020-12 schema,
every payload the models accept (the v1 payloads kept from before, and today's) passes it, and
payloads the models refuse for a privacy reason fail it too, so the files do not promise less than
the code keeps.
"""

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from firmware.link.schemas import MESSAGES
from tests.unit.link.test_v1_payloads import PAYLOADS, leaf_of

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def _validator(leaf: str):
    schema = json.loads((SCHEMAS / f"{leaf}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("leaf", sorted(MESSAGES))
def test_every_schema_file_is_a_valid_schema(leaf):
    _validator(leaf)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_every_payload_the_models_accept_passes_its_schema_file(name):
    leaf = leaf_of(name)
    model = MESSAGES[leaf]
    payload = PAYLOADS[name]
    model.model_validate_json(json.dumps(payload))  # the models accept it
    errors = list(_validator(leaf).iter_errors(payload))
    assert not errors, [error.message[:200] for error in errors]


@pytest.mark.parametrize("field, value", [
    ("site", "123456789012"),           # the 12-digit number where an id goes
    ("reader", "1234 5678 9012"),
    ("face_score", 1.5),                # out of range
    ("photo", "AAAA"),                  # a field the contract does not have
])
def test_the_schema_file_refuses_what_the_model_refuses(field, value):
    payload = dict(PAYLOADS["result_face"], **{field: value})
    with pytest.raises(ValidationError):
        MESSAGES["result"].model_validate_json(json.dumps(payload))
    assert list(_validator("result").iter_errors(payload)), f"{field}={value!r} passes the schema file"
