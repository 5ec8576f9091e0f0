"""Versioned message contracts on the link to the eligibility terminal (MQTT).

Topics live under ``uketsuke/v1/{site}/{reader}/``: ``status`` (retained, last will = offline),
``event`` (progress for staff screens), ``result`` (QoS 1), ``ack`` (terminal → kiosk: the result
with this ``id`` is stored at the terminal; only then does the kiosk forget it; it also carries the
terminal's verification of the result's proof and its eligibility answer), ``cmd`` (terminal →
kiosk) and ``reply`` (kiosk → terminal, correlated by the command's ``id``).

Requests and answers (kiosk asks, terminal answers on the same reader's topics, correlated by the
request's ``id``): ``challenge_request`` → ``challenge`` (single-use nonces for the kiosk's pool),
``context_request`` → ``context`` (registered? previous consent? eligibility hint) and
``registration_request`` → ``registration`` (first insurance-use registration).

Version 1 grew by optional fields only (#10): a v1 payload of before still parses, and the kiosk of
before still builds every message (each new field has a default).

Every model forbids unknown fields: a result can never grow a field that carries the face image, the
PIN or the 12-digit number without this file changing (and its tests failing). Correlation ids travel
in the payload, not in MQTT 5 properties, so the same contract works over MQTT 3.1.1 brokers.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firmware.card.certificate import CertStatus
from firmware.errors import MessageError
from firmware.link.limits import MAX_COMMAND_BYTES, MAX_SMALL_BYTES, check_payload

#: Correlation ids are echoed in replies, so they are restricted to harmless characters.
COMMAND_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
UUID_PATTERN = r"^[0-9a-f-]{36}$"
CARD_KIND_PATTERN = r"^(card|face-only|android|iphone)$"  # firmware.card.jpki.TokenKind

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
CorrelationId = Annotated[str, Field(pattern=COMMAND_ID_PATTERN)]


def _check_base64(value: str | None) -> str | None:
    if value is not None:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be standard base64") from None
    return value


#: The consent items, by the ORCA field prefix (``<prefix>ConsFlg`` / ``<prefix>ConsTime``).
CONSENT_ITEMS = (
    "PharmacistsInfo", "SpecificHealthCheckupsInfo", "DiagnosisInfo", "OperationInfo",  # 2024-01
    "DiagnosisName", "InfectiousInfo", "AllergyInfo", "ContraindicationInfo", "TestInfo",  # 2025-01-28
    "PrescriptionInfo",
)


class ConsentFlag(IntEnum):
    """``<Item>ConsFlg``."""

    NO = 0  # 同意なし
    YES = 1  # 同意あり
    EXPIRED = 2  # 同意有効期限切れ
    DIFFICULT = 3  # 同意取得困難 (emergency)


class ConsentItem(BaseModel):
    """One item's answer: the flag and when it was given (``<Item>ConsTime``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flag: ConsentFlag
    time: datetime | None = None


class Eligibility(StrEnum):
    """The terminal's answer (QualificationValidity 1 有効, 2/3 無効, 4 該当資格なし)."""

    VALID = "valid"
    INVALID = "invalid"
    NO_RECORD = "no_record"

    @classmethod
    def from_qualification_validity(cls, code: int) -> Eligibility | None:
        """1 → valid, 2/3 → invalid, 4 → no_record; 5 (複数該当) and anything else → None."""
        return {1: cls.VALID, 2: cls.INVALID, 3: cls.INVALID, 4: cls.NO_RECORD}.get(code)


def _check_consent_keys(value: Any) -> Any:
    if isinstance(value, dict):
        unknown = [key for key in value if key not in CONSENT_ITEMS]
        if unknown:
            raise ValueError(f"keys must be ORCA consent items ({len(unknown)} unknown)")
    return value


class ResultMessage(_Message):
    """The outcome of one check-in, sent QoS 1 through the durable outbox.

    Proof of the holder, over a nonce (``nonce_b64``): from a terminal ``challenge_id`` when the pool
    had one (``fresh`` true), else one the kiosk made up (``fresh`` false: the terminal then treats
    freshness as unverified). PIN and smartphone: ``signature_b64``, the JPKI authentication key's
    PKCS#1 v1.5 signature over SHA-256 DigestInfo(nonce), verifiable with ``cert_der_b64``'s key.
    Face: ``genuineness_b64``, the card's 券面AP signature over the same DigestInfo, verifiable with the
    key of the card's CVC (``cvc_b64``, EF 0004), whose issuer the terminal may check.
    """

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), pattern=UUID_PATTERN)
    site: str
    reader: str
    method: Method
    card_kind: str = Field(pattern=CARD_KIND_PATTERN)
    cert_der_b64: Base64
    cert_status: CertStatus
    #: ORCA prefix → flag and time. For the kiosk of before, a bare bool reads as flag 1/0 without time.
    consent: dict[str, ConsentItem] = Field(default_factory=dict, max_length=len(CONSENT_ITEMS))
    prescription: Literal["electronic", "paper"] | None = None  # PrescriptionIssueSelect 1 / 2
    eligibility_only: bool = False  # grace period: no medical-information consent was asked
    registration: bool | None = None  # registered for insurance use at this visit (False: asked, not done)
    consent_carried_over: bool = False  # 前回と同じ: the previous consent at this institution was repeated
    proxy: bool = False
    face_score: float | None = None
    face_threshold: float | None = None
    face_live: bool | None = None
    challenge_id: CorrelationId | None = None
    fresh: bool = False
    nonce_b64: Base64 | None = None
    signature_b64: Base64 | None = None  # PIN/phone: JPKI signature over the nonce
    genuineness_b64: Base64 | None = None  # face: the card's own signature over the nonce
    cvc_b64: Base64 | None = None  # face: the card's CVC (EF 0004), whose key verifies genuineness_b64

    @field_validator("cert_der_b64", "nonce_b64", "signature_b64", "genuineness_b64", "cvc_b64")
    @classmethod
    def _is_base64(cls, value: str | None) -> str | None:
        return _check_base64(value)

    @field_validator("consent", mode="before")
    @classmethod
    def _consent_items(cls, value: Any) -> Any:
        if not isinstance(_check_consent_keys(value), dict):
            return value
        return {key: ({"flag": int(item)} if isinstance(item, bool) else item) for key, item in value.items()}


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


Problem = Annotated[str, Field(max_length=240)]


class AckMessage(_Message):
    """From the terminal: the result ``id`` is stored there (sent again for every duplicate).

    With it, the terminal's answer: ``verified`` (the proof verified; None = nothing to verify, e.g.
    a staff visual check), ``problems`` (e.g. "freshness unverified: …", "unverified issuer") and
    ``eligibility`` (None = no answer, e.g. 複数該当 or the terminal could not ask).
    """

    id: str = Field(pattern=UUID_PATTERN)
    verified: bool | None = None
    problems: list[Problem] = Field(default_factory=list, max_length=20)
    eligibility: Eligibility | None = None


class Challenge(BaseModel):
    """A single-use nonce issued by the terminal; ``expires`` on the terminal's clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: CorrelationId
    nonce_b64: str = Field(min_length=8, max_length=256)
    expires: datetime

    @field_validator("nonce_b64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        return _check_base64(value)

    @property
    def nonce(self) -> bytes:
        return base64.b64decode(self.nonce_b64)

    nonce_bytes = nonce


MAX_CHALLENGES_PER_OFFER = 8


class ChallengeRequest(_Message):
    """Kiosk → terminal: please issue ``count`` challenges (topic ``challenge_request``)."""

    id: CorrelationId = Field(default_factory=lambda: str(uuid.uuid4()))
    count: int = Field(ge=1, le=MAX_CHALLENGES_PER_OFFER)


class ChallengeOffer(_Message):
    """Terminal → kiosk: challenges answering request ``request_id`` (topic ``challenge``)."""

    request_id: CorrelationId
    challenges: list[Challenge] = Field(max_length=MAX_CHALLENGES_PER_OFFER)


class ContextRequest(_Message):
    """Kiosk → terminal, after the certificate is read (topic ``context_request``)."""

    id: CorrelationId = Field(default_factory=lambda: str(uuid.uuid4()))
    session_id: CorrelationId
    cert_der_b64: Base64
    token_kind: str = Field(pattern=CARD_KIND_PATTERN)

    @field_validator("cert_der_b64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        return _check_base64(value)


class ContextAnswer(_Message):
    """Terminal → kiosk (topic ``context``): what the terminal knows of this certificate's holder.

    ``registered`` None = the terminal could not tell; ``previous_consent_at`` is when the holder last
    consented at this institution (None = no previous consent) and ``previous_consent`` what they
    answered then, per item (for 前回と同じ); ``eligibility`` is a hint only (the answer that counts
    comes with the result's ack).
    """

    request_id: CorrelationId
    session_id: CorrelationId
    registered: bool | None = None
    previous_consent_at: datetime | None = None
    previous_consent: dict[str, ConsentFlag] | None = Field(None, max_length=len(CONSENT_ITEMS))
    eligibility: Eligibility | None = None

    @field_validator("previous_consent", mode="before")
    @classmethod
    def _consent_items(cls, value: Any) -> Any:
        return _check_consent_keys(value)


class RegistrationRequest(_Message):
    """Kiosk → terminal: register this certificate for insurance use (topic ``registration_request``)."""

    id: CorrelationId = Field(default_factory=lambda: str(uuid.uuid4()))
    session_id: CorrelationId
    cert_der_b64: Base64

    @field_validator("cert_der_b64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        return _check_base64(value)


#: Known ``RegistrationAnswer.reason`` values (the screens explain them; others mean "ask at reception").
REGISTRATION_REASONS = ("expires_soon", "expired", "certificate_unreadable", "already_registered")


class RegistrationAnswer(_Message):
    """Terminal → kiosk (topic ``registration``). ``reason`` is a short key, not text for patients."""

    request_id: CorrelationId
    session_id: CorrelationId
    ok: bool
    reason: str | None = Field(None, pattern=r"^[a-z_]{1,40}$")


class EventMessage(_Message):
    """Progress of the current check-in, for staff screens (no personal data)."""

    reader: str
    state: str
    detail: str = ""


class CommandName(StrEnum):
    START = "start"
    CANCEL = "cancel"
    VISUAL = "visual"  # staff force a visual check (目視確認)
    VISUAL_OK = "visual_ok"
    VISUAL_NG = "visual_ng"
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
