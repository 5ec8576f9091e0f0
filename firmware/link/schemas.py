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
PIN or the 12-digit number without this file changing (and its tests failing). Every field is bounded
and typed (docs/notes/contracts.md; ``tests/unit/link/test_schema_bounds.py`` walks the JSON Schema):

- strings have a maximum length and an enum or a pattern; the free ones (site and reader ids,
  correlation ids, staff-visible ``problems`` and ``error`` lines) also refuse anything that reads
  like the 12-digit number (``NUMBER_LIKE``: 12 digits, or 4-4-4 with spaces or hyphens), except
  UUIDs, which are random by design; event ``detail`` is a code (a snake/kebab-case key or an
  error class name), letters only; timestamps are RFC 3339 text, never bare numbers;
- command ``args`` and reply ``detail`` are closed typed dicts, checked per command;
- lists and maps have a maximum size, numbers a range;
- base64 fields (certificate, nonce, signature, genuineness proof, CVC) are bytes by design, each
  bounded to what the card or terminal produces (``B64_LIMITS``), never large enough for a photo.

The contract guards against a careless change, not against hostile firmware: a kiosk that meant to
leak could still hide bits in a float or a nonce.

Correlation ids travel in the payload (``Command.id`` → ``Reply.id``) so the same contract works over
MQTT 3.1.1 brokers; over MQTT 5 a command may also carry a ``ResponseTopic`` and ``CorrelationData``
(properties, not payload), which the kiosk honours (``firmware/link/mqtt.py``).

Versioning (``v``): the version changes only when a payload that was valid before would be read
differently or refused by a reader of before, i.e. a field is removed, renamed, retyped or made
required. Adding an optional field with a default, or tightening a bound that every payload our
kiosk and terminal ever wrote meets (``tests/unit/link/v1_payloads.json``), stays within v1. A new
version would get a new topic root (``uketsuke/v2``), and readers would accept both while the old
one drains from the outboxes.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from firmware.card.certificate import CertStatus
from firmware.errors import MessageError
from firmware.link.limits import MAX_COMMAND_BYTES, MAX_SMALL_BYTES, check_payload

#: Correlation ids are echoed in replies, so they are restricted to harmless characters.
COMMAND_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
#: A UUID as ``str(uuid.uuid4())`` writes it (result ids; random by design).
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
CARD_KIND_PATTERN = r"^(card|face-only|android|iphone)$"  # firmware.card.jpki.TokenKind
#: Site and reader ids, as in the config (``firmware.config.Identifier``): also topic levels.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
#: What reads like the 12-digit individual number: plain, or as printed (4-4-4, spaces or hyphens).
NUMBER_LIKE = r"[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}"
#: One printable line (no control characters, so no second line a log or a screen would show).
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
#: Flow states and event names: snake_case letters (firmware/flow state ids, ``visual_wanted``, …).
STATE_PATTERN = r"^[a-z][a-z_]{0,39}$"
#: Event details: "" or a code, letters only: a key (``proxy``, ``outbox-write``) or an error class name.
DETAIL_PATTERN = r"^([a-z][a-z_-]{0,39}|[A-Z][A-Za-z]{0,63})?$"
BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"

#: Base64 text fields, by design bytes, each bounded (characters) to what the card or terminal makes.
B64_LIMITS = {
    "cert": 8192,  # the JPKI authentication certificate, DER (~1.5-2 KB; 6 KB allowed)
    "signature": 1024,  # RSA up to 4096 bits (512 bytes → 684 characters)
    "cvc": 2048,  # the card's CVC, EF 0004 (~600 bytes)
    "nonce": 256,  # a terminal challenge (32 bytes) or the kiosk's own nonce (32 bytes)
}
TEXT_MAX = 240
MAX_PROBLEMS = 20

SCHEMA_VERSION = 1
TOPIC_ROOT = "uketsuke/v1"

_NUMBER_LIKE = re.compile(NUMBER_LIKE)
_UUID = re.compile(UUID_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def topic(site: str, reader: str, leaf: str) -> str:
    """``uketsuke/v1/{site}/{reader}/{leaf}``."""
    return f"{TOPIC_ROOT}/{site}/{reader}/{leaf}"


def now_utc() -> datetime:
    return datetime.now(UTC)


def safe_text(text: object, max_chars: int = TEXT_MAX) -> str:
    """``text`` made fit for a staff-visible line (``problems``, ``error``): one line, bounded, and
    with anything that reads like the 12-digit number masked. For senders, so a message of ours
    (an exception's text, a path) never makes a status or a reply fail to build."""
    line = _CONTROL.sub(" ", str(text))
    line = _NUMBER_LIKE.sub(lambda match: "#" * len(match.group()), line)
    return line[:max_chars]


def _not_number_like(value: str) -> str:
    if _NUMBER_LIKE.search(value):
        raise ValueError("must not contain anything like a 12-digit number")
    return value


def _id_not_number_like(value: str) -> str:
    return value if _UUID.fullmatch(value) else _not_number_like(value)


def _check_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be standard base64") from None
    return value


def _iso_text_only(value: Any) -> Any:
    """A timestamp is RFC 3339 text (or a datetime in Python), never a bare number of seconds."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and (len(value) > 40 or value[:1].isdigit()
                                                                      and value.replace(".", "").isdigit())):
        raise ValueError("must be an RFC 3339 date-time such as 2025-03-01T10:02:03+09:00")
    return value


_NOT_NUMBER_LIKE_SCHEMA = {"not": {"pattern": NUMBER_LIKE}}

Timestamp = Annotated[datetime, BeforeValidator(_iso_text_only), Field(json_schema_extra={"maxLength": 40})]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64,
                                  json_schema_extra=_NOT_NUMBER_LIKE_SCHEMA), AfterValidator(_not_number_like)]
CorrelationId = Annotated[str, Field(pattern=COMMAND_ID_PATTERN, max_length=64, json_schema_extra={
    "anyOf": [{"pattern": UUID_PATTERN}, _NOT_NUMBER_LIKE_SCHEMA]}), AfterValidator(_id_not_number_like)]
Uuid = Annotated[str, Field(pattern=UUID_PATTERN, max_length=36)]
#: One staff-visible line (``problems``, ``error``): no control characters, nothing like the number.
Text = Annotated[str, Field(pattern=LINE_PATTERN, max_length=TEXT_MAX, json_schema_extra=_NOT_NUMBER_LIKE_SCHEMA),
                 AfterValidator(_not_number_like)]
Problem = Text
StateCode = Annotated[str, Field(pattern=STATE_PATTERN, max_length=40)]
DetailCode = Annotated[str, Field(pattern=DETAIL_PATTERN, max_length=64)]


def _clamp_rounding(value: Any) -> Any:
    """float32 cosines of near-identical faces come out as 1.0000001: that is 1, not an error."""
    if isinstance(value, float) and 1.0 < abs(value) <= 1.0 + 1e-5:
        return 1.0 if value > 0 else -1.0
    return value


Score = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False), BeforeValidator(_clamp_rounding)]  # cosine


def _b64(kind: str, min_chars: int):
    # Pattern and minimum length are checked by _check_base64 (one message: "must be standard base64").
    def check(value: str) -> str:
        if len(value) < min_chars:
            raise ValueError(f"must be standard base64 of at least {min_chars} characters")
        return _check_base64(value)

    return Annotated[str, Field(max_length=B64_LIMITS[kind], json_schema_extra={
        "pattern": BASE64_PATTERN, "minLength": min_chars}), AfterValidator(check)]


CertB64 = _b64("cert", 4)
SignatureB64 = _b64("signature", 4)
CvcB64 = _b64("cvc", 4)
NonceB64 = _b64("nonce", 8)


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
    ts: Timestamp = Field(default_factory=now_utc)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


#: The consent items, by the ORCA field prefix (``<prefix>ConsFlg`` / ``<prefix>ConsTime``).
CONSENT_ITEMS = (
    "PharmacistsInfo", "SpecificHealthCheckupsInfo", "DiagnosisInfo", "OperationInfo",  # 2024-01
    "DiagnosisName", "InfectiousInfo", "AllergyInfo", "ContraindicationInfo", "TestInfo",  # 2025-01-28
    "PrescriptionInfo",
)
ConsentKey = Literal[CONSENT_ITEMS]  # type: ignore[valid-type]  # the tuple's values, one Literal


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
    time: Timestamp | None = None


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


def _legacy_consent(schema: dict) -> None:
    """The schema file says what the model accepts: a consent item, or (v1 before #10) its bare flag."""
    item = schema.get("additionalProperties")
    if item is not None:
        schema["additionalProperties"] = {"anyOf": [item, {"type": "boolean",
                                                           "description": "v1 before #10: the flag alone"}]}


class ResultMessage(_Message):
    """The outcome of one check-in, sent QoS 1 through the durable outbox.

    Proof of the holder, over a nonce (``nonce_b64``): from a terminal ``challenge_id`` when the pool
    had one (``fresh`` true), else one the kiosk made up (``fresh`` false: the terminal then treats
    freshness as unverified). PIN and smartphone: ``signature_b64``, the JPKI authentication key's
    PKCS#1 v1.5 signature over SHA-256 DigestInfo(nonce), verifiable with ``cert_der_b64``'s key.
    Face: ``genuineness_b64``, the card's 券面AP signature over the nonce bound to this result's
    certificate (DigestInfo of SHA-256 over a domain tag, the nonce and the certificate's SHA-256;
    ``firmware/card/genuineness.py``), verifiable with the key of the card's CVC (``cvc_b64``,
    EF 0004), whose issuer the terminal may check. ``face_score`` / ``face_threshold``: the cosine
    the kiosk decided on (a match is a score above the threshold) and the threshold it used.

    Never the face image, the PIN, the 12-digit number or a face embedding: there is no field for
    them, and no field large or free enough to hold one.
    """

    id: Uuid = Field(default_factory=lambda: str(uuid.uuid4()))
    site: Identifier
    reader: Identifier
    method: Method
    card_kind: str = Field(pattern=CARD_KIND_PATTERN, max_length=9)
    cert_der_b64: CertB64
    cert_status: CertStatus
    #: ORCA prefix → flag and time. For the kiosk of before, a bare bool reads as flag 1/0 without time.
    consent: dict[ConsentKey, ConsentItem] = Field(default_factory=dict, max_length=len(CONSENT_ITEMS),
                                                   json_schema_extra=lambda schema: _legacy_consent(schema))
    prescription: Literal["electronic", "paper"] | None = None  # PrescriptionIssueSelect 1 / 2
    eligibility_only: bool = False  # grace period: no medical-information consent was asked
    registration: bool | None = None  # registered for insurance use at this visit (False: asked, not done)
    consent_carried_over: bool = False  # 前回と同じ: the previous consent at this institution was repeated
    proxy: bool = False
    face_score: Score | None = None
    face_threshold: Score | None = None
    face_live: bool | None = None
    challenge_id: CorrelationId | None = None
    fresh: bool = False
    nonce_b64: NonceB64 | None = None
    signature_b64: SignatureB64 | None = None  # PIN/phone: JPKI signature over the nonce
    genuineness_b64: SignatureB64 | None = None  # face: the card's own signature over nonce + certificate
    cvc_b64: CvcB64 | None = None  # face: the card's CVC (EF 0004), whose key verifies genuineness_b64

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

    reader: Identifier
    state: Literal["online", "offline"]
    software: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9 ._+-]*$",
                          json_schema_extra=_NOT_NUMBER_LIKE_SCHEMA)
    instance: str = Field("", max_length=8, pattern=r"^([0-9a-f]{8})?$")  # secrets.token_hex(4)
    problems: list[Text] = Field(default_factory=list, max_length=MAX_PROBLEMS)

    @field_validator("software")
    @classmethod
    def _software(cls, value: str) -> str:
        return _not_number_like(value)


class AckMessage(_Message):
    """From the terminal: the result ``id`` is stored there (sent again for every duplicate).

    With it, the terminal's answer: ``verified`` (the proof verified; None = nothing to verify, e.g.
    a staff visual check), ``problems`` (e.g. "freshness unverified: …", "unverified issuer") and
    ``eligibility`` (None = no answer, e.g. 複数該当 or the terminal could not ask).
    """

    id: Uuid
    verified: bool | None = None
    problems: list[Text] = Field(default_factory=list, max_length=MAX_PROBLEMS)
    eligibility: Eligibility | None = None


class Challenge(BaseModel):
    """A single-use nonce issued by the terminal; ``expires`` on the terminal's clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: CorrelationId
    nonce_b64: NonceB64
    expires: Timestamp

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
    cert_der_b64: CertB64
    token_kind: str = Field(pattern=CARD_KIND_PATTERN, max_length=9)


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
    previous_consent_at: Timestamp | None = None
    previous_consent: dict[ConsentKey, ConsentFlag] | None = Field(None, max_length=len(CONSENT_ITEMS))
    eligibility: Eligibility | None = None

    @field_validator("previous_consent", mode="before")
    @classmethod
    def _consent_items(cls, value: Any) -> Any:
        return _check_consent_keys(value)


class RegistrationRequest(_Message):
    """Kiosk → terminal: register this certificate for insurance use (topic ``registration_request``)."""

    id: CorrelationId = Field(default_factory=lambda: str(uuid.uuid4()))
    session_id: CorrelationId
    cert_der_b64: CertB64


#: Known ``RegistrationAnswer.reason`` values (the screens explain them; others mean "ask at reception").
REGISTRATION_REASONS = ("expires_soon", "expired", "certificate_unreadable", "already_registered")


class RegistrationAnswer(_Message):
    """Terminal → kiosk (topic ``registration``). ``reason`` is a short key, not text for patients."""

    request_id: CorrelationId
    session_id: CorrelationId
    ok: bool
    reason: str | None = Field(None, pattern=r"^[a-z_]{1,40}$", max_length=40)


class EventMessage(_Message):
    """Progress of the current check-in, for staff screens (no personal data).

    ``state`` is a flow state id or an announcement (``visual_wanted``, ``call_staff``); ``detail`` a
    code: ``proxy``, a blocking problem's key (``outbox-write``) or the class name of the error that
    ended the visit (``CardRemoved``). Letters only, so neither can carry a number; senders pass
    through :func:`event_code` (anything else becomes ``other``).
    """

    reader: Identifier
    state: StateCode
    detail: DetailCode = ""


_STATE = re.compile(STATE_PATTERN)
_DETAIL = re.compile(DETAIL_PATTERN)


def event_code(state: str, detail: str = "") -> tuple[str, str]:
    """``(state, detail)`` as an event may carry them; what does not fit becomes ``other``."""
    return (state if _STATE.fullmatch(state) else "other",
            detail if _DETAIL.fullmatch(detail) and len(detail) <= 64 else "other")


class CommandName(StrEnum):
    START = "start"
    CANCEL = "cancel"
    VISUAL = "visual"  # staff force a visual check (目視確認)
    VISUAL_OK = "visual_ok"
    VISUAL_NG = "visual_ng"
    SET_LANGUAGE = "set_language"
    PING = "ping"


#: The kiosk's screen languages (``firmware.config.Language``).
LANGUAGES = ("ja", "en", "zh", "ko", "vi", "pt")
Language = Literal[LANGUAGES]  # type: ignore[valid-type]


class CommandArgs(TypedDict, total=False):
    """Every argument any command takes; :data:`COMMAND_ARGS` says which command takes which."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    language: Language


#: Command → the arguments it requires (all of them; a command takes no others). Absent: none.
COMMAND_ARGS: dict[CommandName, tuple[str, ...]] = {CommandName.SET_LANGUAGE: ("language",)}


def _command_args_schema(schema: dict[str, Any]) -> None:
    """The per-command rule of :data:`COMMAND_ARGS` in JSON Schema (``if cmd is … then args …``)."""
    rules = [{"if": {"properties": {"cmd": {"const": name.value}}, "required": ["cmd"]},
              "then": {"properties": {"args": {"required": list(names), "maxProperties": len(names)}},
                       "required": ["args"]}}
             for name, names in COMMAND_ARGS.items()]
    rules.append({"if": {"properties": {"cmd": {"enum": [n.value for n in CommandName if n not in COMMAND_ARGS]}}},
                  "then": {"properties": {"args": {"maxProperties": 0}}}})
    schema["allOf"] = rules


class Command(_Message):
    """From the terminal. ``id`` correlates the reply (and, over MQTT 5, ``CorrelationData`` may too).

    ``args`` are typed and checked per command (:data:`COMMAND_ARGS`): ``set_language`` takes
    ``language``; every other command takes none.
    """

    model_config = ConfigDict(json_schema_extra=_command_args_schema)

    id: CorrelationId = Field(default_factory=lambda: str(uuid.uuid4()))
    cmd: CommandName
    args: CommandArgs = Field(default_factory=dict)

    @model_validator(mode="after")
    def _args_fit_the_command(self) -> Command:
        wanted = COMMAND_ARGS.get(self.cmd, ())
        if set(self.args) != set(wanted):
            raise ValueError(f"{self.cmd.value} takes {', '.join(wanted) if wanted else 'no arguments'}")
        return self


class ReplyDetail(TypedDict, total=False):
    """What a command's reply may say, by command: ``ping`` → state and pending_results; ``cancel`` →
    cancelled; ``visual``/``visual_ok``/``visual_ng`` → accepted; ``set_language`` → language."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    state: StateCode
    pending_results: Annotated[int, Field(ge=0, le=1_000_000)]
    cancelled: bool
    accepted: bool
    language: Language


ReplyId = Annotated[str, Field(pattern=r"^([A-Za-z0-9._:-]{1,64})?$", max_length=64, json_schema_extra={
    "anyOf": [{"pattern": UUID_PATTERN}, _NOT_NUMBER_LIKE_SCHEMA]}), AfterValidator(_id_not_number_like)]


class Reply(_Message):
    """Answer to a command (or to an unparseable message, then with ``id`` ``""``)."""

    id: ReplyId
    ok: bool
    error: Text | None = None
    detail: ReplyDetail = Field(default_factory=dict)


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


#: Every message on the link, by its topic leaf (``uketsuke/v1/{site}/{reader}/<leaf>``).
MESSAGES: dict[str, type[_Message]] = {
    "status": StatusMessage, "event": EventMessage, "result": ResultMessage, "ack": AckMessage,
    "cmd": Command, "reply": Reply, "challenge_request": ChallengeRequest, "challenge": ChallengeOffer,
    "context_request": ContextRequest, "context": ContextAnswer,
    "registration_request": RegistrationRequest, "registration": RegistrationAnswer,
}
