"""Limits on what the link reads, checked before any JSON parser sees the bytes.

A 2 KB payload nested a thousand deep makes ``json.loads`` raise RecursionError, and a 40 MB one
takes a Pi's memory; both come from anyone who can publish on the broker. So every topic a kiosk or
the terminal reads has a byte limit and a nesting limit, checked by a linear scan, and the error
says which limit was crossed, never what the payload said.
"""

from __future__ import annotations

from firmware.errors import MessageError

#: Commands are a verb and a few short arguments.
MAX_COMMAND_BYTES = 4 * 1024
#: A result carries a certificate (~2 KB DER), a signature and a genuineness proof, base64.
MAX_RESULT_BYTES = 64 * 1024
#: Context and registration requests carry the certificate (~2 KB DER), base64.
MAX_REQUEST_BYTES = 24 * 1024
#: Status, event, ack, reply, challenge, context and registration answers are small.
MAX_SMALL_BYTES = 8 * 1024
#: MQTT 5 ``CorrelationData`` of a command that the kiosk echoes on its reply; longer is not echoed.
MAX_CORRELATION_BYTES = 64
#: The deepest our own contracts go is 3 (object → consent/detail/args → value).
MAX_JSON_DEPTH = 8


def json_depth(payload: bytes, limit: int) -> int:
    """Deepest nesting of ``{``/``[`` outside strings, scanning at most until ``limit`` is passed."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return deepest


def check_payload(payload: bytes, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> bytes:
    """Return ``payload`` if it is within both limits; raise MessageError naming the limit if not."""
    if not isinstance(payload, (bytes, bytearray)):
        raise MessageError("payload is not bytes")
    if len(payload) > max_bytes:
        raise MessageError(f"payload is {len(payload)} bytes; the limit is {max_bytes}")
    if json_depth(payload, max_depth) > max_depth:
        raise MessageError(f"payload nests deeper than {max_depth} levels")
    return bytes(payload)
