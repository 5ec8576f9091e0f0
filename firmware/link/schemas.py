"""Versioned message contracts on the link to the eligibility terminal (MQTT).

Topics live under ``uketsuke/v1/{site}/{reader}/``: ``status`` (retained, last will = offline),
``event`` (progress for staff screens), ``result`` (QoS 1), ``cmd`` (terminal → kiosk) and
``reply`` (kiosk → terminal, correlated by the command's ``id``).

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
    """Retained presence of a reader; the broker publishes ``offline`` as its last will."""

    reader: str
    state: Literal["online", "offline"]
    software: str = ""


class EventMessage(_Message):
    """Progress of the current check-in, for staff screens (no personal data)."""

    reader: str
    state: str
    detail: str = ""


class CommandName(StrEnum):
    START = "start"
    CANCEL = "cancel"
    VISUAL_OK = "visual_ok"
    SET_LANGUAGE = "set_language"
    PING = "ping"


class Command(_Message):
    """From the terminal. ``id`` correlates the reply."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=64)
    cmd: CommandName
    args: dict[str, Any] = Field(default_factory=dict)


class Reply(_Message):
    """Answer to a command (or to an unparseable message, then with ``id`` ``""``)."""

    id: str = Field(max_length=64)
    ok: bool
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


def parse(model: type[_Message], payload: bytes) -> _Message:
    """Parse one payload; any failure becomes a MessageError naming what was wrong."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise MessageError(f"invalid {model.__name__}: {where}: {first['msg']}") from None


def command_id(payload: bytes) -> str:
    """Best-effort id of a malformed command, so its error reply can still be correlated."""
    import json

    try:
        value = json.loads(payload).get("id", "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) and len(value) <= 64 else ""
