"""The redaction filter is the last line of defence: prove nothing personal reaches a handler."""

import io
import json
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.logs import RedactingFilter, configure, redact_text

MY_NUMBER = "123456789018"
COLLATION_B = "55021720352285"


@pytest.fixture
def capture():
    stream = io.StringIO()
    handler = configure("DEBUG", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


@pytest.mark.parametrize("json_lines", [False, True])
def test_nothing_personal_reaches_the_stream(json_lines):
    stream = io.StringIO()
    handler = configure("DEBUG", json_lines=json_lines, stream=stream)
    log = logging.getLogger("test.redaction")
    try:
        log.info("read number %s", MY_NUMBER)
        log.info("grouped 1234 5678 9018 and 1234-5678-9018")
        log.info("verify pin=%s", "4321")
        log.info("暗証番号 9876 entered")
        log.warning("collation %s", COLLATION_B)
        log.info("photo %r", bytes(range(256)) * 40)
        log.info("frame", extra={"frame": np.full((4, 4, 3), 7, np.uint8), "pin": "1111", "site": "ok-site"})
        log.info("embedding %s", np.arange(128, dtype=np.float32))
        log.info("int number %d", int(MY_NUMBER))
        try:
            raise ValueError(f"bad card {MY_NUMBER}")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    for secret in (MY_NUMBER, "5678", COLLATION_B, "4321", "9876", "1111"):
        assert secret not in text
    assert "\\x00\\x01" not in text and "00010203" not in text
    assert "ok-site" in text  # ordinary fields survive
    if json_lines:
        for line in text.strip().splitlines():
            if line.startswith("{"):
                json.loads(line)
    else:
        assert text.startswith("<6>test.redaction: read number [NUMBER]")


def test_ordinary_numbers_survive():
    assert redact_text("took 1732550000123 ms, expiry 2035, tries 3") == "took 1732550000123 ms, expiry 2035, tries 3"


@settings(max_examples=300)
@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.text(max_size=30), st.text(max_size=30))
def test_any_twelve_digit_number_is_redacted(number, before, after):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s " + number + " %s", (before, after), None)
    RedactingFilter().filter(record)
    if not (before[-1:].isdigit() or after[:1].isdigit()):
        assert number not in record.getMessage()
