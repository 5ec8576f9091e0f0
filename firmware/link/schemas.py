"""Versioned message contracts on the link to the eligibility terminal (MQTT).

Topics live under ``uketsuke/v1/{site}/{reader}/``: ``status`` (retained, last will = offline),
``event`` (progress for staff screens), ``result`` (QoS 1), ``ack`` (terminal → kiosk: the result
with this ``id`` is stored at the terminal; only then does the kiosk forget it), ``cmd`` (terminal →
kiosk) and ``reply`` (kiosk → terminal, correlated by the command's ``id``).

Every model forbids unknown fields: a result can never grow a field that carries the face image, the
PIN or the 12-digit number without this file changing (and its tests failing). Correlation ids travel
in the payload, not in MQTT 5 properties, so the same contract works over MQTT 3.1.1 brokers.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firmware.card.certificate import CertStatus
from firmware.errors import MessageError
from firmware.link.limits import MAX_COMMAND_BYTES, MAX_SMALL_BYTES, check_payload

SCHEMA_VERSION = 1
TOPIC_ROOT = "uketsuke/v1"


def topic(site: str, reader: str, leaf: str) -> str:
    """``uketsuke/v1/{site}/{reader}/{leaf}``."""
    return f"{TOPIC_ROOT}/{site}/{reader}/{leaf}"


def now_utc() -> datetime:
    return datetime.now(UTC)


class Method(StrEnum):
    """How the holder was confirmed."""

    FACE = "face"
    PIN = "pin"
    VISUAL = "visual"  # 目視確認 by staff
    SMARTPHONE = "smartphone"
    NONE = "none"  # certificate read only (walking skeleton, eligibility without identity proof)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    ts: datetime = Field(default_factory=now_utc)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


Base64 = Annotated[str, Field(max_length=16384)]


class ResultMessage(_Message):
    """The outcome of one check-in, sent QoS 1 through the durable outbox."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), pattern=r"^[0-9a-f-]{36}$")
    site: str
    reader: str
    method: Method
    card_kind: str = Field(pattern=r"^(card|face-only|android|iphone)$")  # firmware.card.jpki.TokenKind
    cert_der_b64: Base64
    cert_status: CertStatus
    consent: dict[str, bool] = Field(default_factory=dict)
    proxy: bool = False
    face_score: float | None = None
    face_threshold: float | None = None
    nonce_b64: Base64 | None = None
    signature_b64: Base64 | None = None  # PIN path: JPKI signature over the terminal's nonce
    genuineness_b64: Base64 | None = None  # face path: the card's own signature over the nonce

    @field_validator("cert_der_b64", "nonce_b64", "signature_b64", "genuineness_b64")
    @classmethod
    def _is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be standard base64") from None
        return value


class StatusMessage(_Message):
    """Retained presence of a reader; the broker publishes ``offline`` as its last will.

    ``instance`` is random per kiosk process: a status from another instance on our own topic means
    a second kiosk was configured with our reader id. ``problems`` are the staff-visible lines.
    """

    reader: str
    state: Literal["online", "offline"]
    software: str = Field("", max_length=64)
    instance: str = Field("", max_length=32)
    problems: list[Annotated[str, Field(max_length=240)]] = Field(default_factory=list, max_length=20)


class AckMessage(_Message):
    """From the terminal: the result ``id`` is stored there (sent again for every duplicate)."""

    id: str = Field(pattern=r"^[0-9a-f-]{36}$")


class EventMessage(_Message):
    """Progress of the current check-in, for staff screens (no personal data)."""

    reader: str
    state: str
    detail: str = ""


#: Correlation ids are echoed in replies, so they are restricted to harmless characters.
COMMAND_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class CommandName(StrEnum):
    START = "start"
    CANCEL = "cancel"
    VISUAL_OK = "visual_ok"
    SET_LANGUAGE = "set_language"
    PING = "ping"


class Command(_Message):
    """From the terminal. ``id`` correlates the reply."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), pattern=COMMAND_ID_PATTERN)
    cmd: CommandName
    args: dict[str, Any] = Field(default_factory=dict)


class Reply(_Message):
    """Answer to a command (or to an unparseable message, then with ``id`` ``""``)."""

    id: str = Field(max_length=64)
    ok: bool
    error: str | None = Field(None, max_length=240)
    detail: dict[str, Any] = Field(default_factory=dict)


def parse(model: type[_Message], payload: bytes, max_bytes: int = MAX_SMALL_BYTES) -> _Message:
    """Check the limits, then parse; any failure becomes a MessageError naming what was wrong.

    The message never repeats the payload: it names a field of ``model`` (or "payload") and says
    what that field must be, so a hostile sender cannot make us echo its text into replies or logs.
    """
    check_payload(payload, max_bytes)
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        where = str(loc[0]) if loc and loc[0] in model.model_fields else "payload"
        if first["type"] == "extra_forbidden":
            where, problem = "payload", "has a field this version does not know"
        else:
            problem = first["msg"][:120]
        raise MessageError(f"invalid {model.__name__}: {where}: {problem}") from None
    except (ValueError, RecursionError):  # belt and braces: the limits above should prevent this
        raise MessageError(f"invalid {model.__name__}: payload does not parse") from None


def command_id(payload: bytes) -> str:
    """Best-effort id of a malformed command, so its error reply can still be correlated.

    Only called on payloads within the limits; only an id of the allowed form is returned.
    """
    import json
    import re

    try:
        check_payload(payload, MAX_COMMAND_BYTES)
        value = json.loads(payload).get("id", "")
    except (ValueError, AttributeError, RecursionError, MessageError):
        return ""
    return value if isinstance(value, str) and re.fullmatch(COMMAND_ID_PATTERN, value) else ""
