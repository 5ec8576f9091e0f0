"""The kiosk's one configuration file, ``config.toml``, validated with pydantic.

A wrong key or value must read as one line that names the key and what is allowed (a technician
fixes it on site with a text editor), so :func:`load_config` turns pydantic's report into a
:class:`~firmware.errors.ConfigError` with exactly that line.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from firmware.errors import ConfigError
from hal.clock import DEFAULT_NOT_BEFORE
from hal.errors import BadBackend
from hal.registry import parse_spec

Language = Literal["ja", "en", "zh", "ko", "vi", "pt"]


def _not_number_like(value: str) -> str:
    # The ids travel in every link message, which refuse anything like the 12-digit individual number
    # (firmware.link.schemas.NUMBER_LIKE): better refused here, at load, than on the first result.
    if re.search(r"[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}", value):
        raise ValueError("must not hold 12 digits (alone or as 4-4-4): that reads like an individual number")
    return value


Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"), AfterValidator(_not_number_like)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Devices(_Strict):
    """Backend selection strings (see :mod:`hal.registry`)."""

    nfc: str = "sim"
    face_camera: str = "sim"
    card_camera: str = "sim"
    indicators: str = "sim"
    speaker: str = "sim"

    @field_validator("nfc", "face_camera", "card_camera", "indicators", "speaker")
    @classmethod
    def _known_backend(cls, value: str, info) -> str:
        role = {"face_camera": "camera", "card_camera": "camera"}.get(info.field_name, info.field_name)
        try:
            parse_spec(role, value)
        except BadBackend as exc:
            raise ValueError(str(exc)) from None
        return value


class Broker(_Strict):
    """Where the eligibility terminal's MQTT broker is, and how the link proves who it talks to.

    TLS is mandatory: ``ca_file`` (the CA of the broker's certificate) and, for mutual TLS with a
    device certificate, ``cert_file`` + ``key_file``. Only a plain broker on this machine (the
    embedded demo broker, a test's private mosquitto) may go without, with ``insecure_local = true``.
    The rules, and the one-line errors when they are broken, live in :mod:`firmware.link.tls`; they
    are checked when a link is built, because they need the files. ``embedded`` starts an in-process
    broker (demo).
    """

    host: str = Field("127.0.0.1", min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:_-]+$")
    port: int = Field(1883, ge=1, le=65535)
    embedded: bool = False
    # MQTT 5 in production (mosquitto); the embedded demo broker (amqtt) speaks 3.1.1 only.
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(30, ge=5, le=600)
    #: True allows a plain (unencrypted, unauthenticated) connection, to a broker on this machine only.
    insecure_local: bool = False
    username: str | None = Field(None, min_length=1, max_length=256)
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class Timeouts(_Strict):
    """How long each state waits for the patient before wiping the session and going back to idle."""

    card_read_s: float = Field(20.0, gt=0, le=300)
    method_choice_s: float = Field(60.0, gt=0, le=600)
    face_s: float = Field(30.0, gt=0, le=300)
    pin_s: float = Field(60.0, gt=0, le=600)
    consent_s: float = Field(90.0, gt=0, le=600)
    done_s: float = Field(8.0, gt=0, le=120)
    error_s: float = Field(10.0, gt=0, le=120)
    notice_s: float = Field(20.0, gt=0, le=300)  # renewal alert, grace and other notices
    more_time_s: float = Field(15.0, gt=0, le=120)  # "もう少し時間が必要ですか?" before giving up
    removed_s: float = Field(5.0, gt=0, le=60)  # "the card was taken out": long enough to read
    context_s: float = Field(4.0, gt=0, le=60)  # waiting for the terminal's context answer
    registration_s: float = Field(10.0, gt=0, le=60)
    visual_s: float = Field(180.0, gt=0, le=900)  # staff walk over and check
    pin_check_s: float = Field(20.0, gt=0, le=120)  # VERIFY + signature on the card


class CardPolicy(_Strict):
    """Card-layer policy. 照合番号B has 10 tries for the card's life: stop long before.

    ``min_collation_tries_left``: the kiosk tries 照合番号B only when the card's counter is at least
    this value (equal is allowed). The default 6 means a try the kiosk loses still leaves the holder
    5. Besides this, the kiosk never tries a card that already lost a try to it (the ledger in
    ``data_dir``).
    """

    min_collation_tries_left: int = Field(6, ge=1, le=10)
    #: Where the grace period after the certificate's expiry ends (the sources differ, see
    #: docs/reference): ``months`` 3 months after the expiry day (the primary source), or
    #: ``month_end`` the end of the month 3 months after (a secondary source).
    grace_rule: Literal["months", "month_end"] = "months"
    #: Folder of CVC issuer public keys (``<issuer reference>.pem``) that the card's genuineness
    #: certificate (券面AP EF 0004) must chain to. None: no issuer is trusted and the face path
    #: refuses every card as not genuine (a problem line says so); PIN and staff still work.
    issuer_keys_dir: Path | None = None


class Face(_Strict):
    """The face path: how many tries, and which liveness checks decide."""

    max_tries: int = Field(3, ge=1, le=5)
    passive_liveness: bool = True  # the passive anti-spoofing model must also say "live"
    card_face_frames: int = Field(24, ge=2, le=200)  # card-camera frames before "unsure"
    #: face-camera frames before a try gives up (10 s at 30 fps: longer than the challenge's 8 s)
    capture_frames: int = Field(300, ge=10, le=900)


class Pin(_Strict):
    shuffle_keys: bool = False  # lay the keypad's digits out in a new order for each visit


class Consent(_Strict):
    policy: Path | None = None  # a clinic's consent_policy.toml; None: the one shipped


class Clock(_Strict):
    """How the kiosk decides that its clock may judge certificate dates (see hal/clock.py).

    ``auto``: ask timedatectl/chronyc where they can answer, else the sanity window; ``ntp``: the
    OS must say "synchronised"; ``window``: only ``not_before`` ≤ today < ``not_before`` + 30 years.
    """

    source: Literal["auto", "ntp", "window"] = "auto"
    not_before: dt.date = DEFAULT_NOT_BEFORE


class Config(_Strict):
    site_id: Identifier = "demo-clinic"
    reader_id: Identifier = "reader-01"
    language: Language = "ja"
    data_dir: Path = Path("var")
    devices: Devices = Devices()
    broker: Broker = Broker()
    timeouts: Timeouts = Timeouts()
    card: CardPolicy = CardPolicy()
    clock: Clock = Clock()
    face: Face = Face()
    pin: Pin = Pin()
    consent: Consent = Consent()


def _describe(error: dict) -> str:
    """Turn one pydantic error into 'key: problem (allowed …)'."""
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {key!r}"
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return f"{key} must be one of {allowed}, not {error.get('input')!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (got {error.get('input')!r})"


def parse_config(data: dict, source: str = "config") -> Config:
    """Validate an already-parsed TOML table. Raises ConfigError naming the first bad key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{source}: {_describe(first)}") from None


def load_config(path: str | Path | None) -> Config:
    """Read and validate ``config.toml``; None gives the defaults (all devices simulated)."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (copy config.example.toml and edit it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(data, str(path))
