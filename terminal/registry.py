"""The reference terminal's fixture registry: what it "knows" of each certificate's holder.

It stands in for the 資格確認 service behind a real terminal: whether the holder registered the card
for insurance use, whether they consented at this institution before, and the eligibility answer.
A TOML file (or JSON with the same shape) lists certificates; any certificate not listed is
registered, has no previous consent and is eligible (``valid``)::

    [[certificate]]
    sha256 = "9f2c…"                      # SHA-256 of the certificate DER, 64 hex digits, or
    # subject_cn = "3XXXXXXXXXXXXXXXXXXXXXX" # the subject's CN (JPKI's serial-like CN)
    registered = false                     # default true
    previous_consent_at = 2025-03-01T10:00:00+09:00  # omit: no previous consent (a naive time is JST)
    previous_consent = { PharmacistsInfo = 1, DiagnosisInfo = 0 }  # ORCA prefix → flag; omitted items
                                           # are 0; no table at all with a time: every item 1 (包括同意)
    eligibility = "invalid"                # valid (default) | invalid | no_record, or instead
    # qualification_validity = 3           # the terminal's code: 1 有効, 2/3 無効, 4 該当資格なし, 5 → no answer
    [certificate.insured]                  # optional: what the national system returns for this holder
    insurer_number = "99999999"            # 保険者番号, 8 digits (6-digit 国保 numbers are padded to 8)
    symbol = "デモ"                         # 記号 (may be empty), number = 番号, branch = 枝番 (2 digits)
    number = "1001"
    branch = "00"
    name = "番号 花子"                      # and name_kana, sex ("1"/"2"), birthdate, address, …
    birthdate = 1989-03-31
    share_percent = 30                     # 負担割合 (InsuredPartialContributionRatio "030")
    limit_category = "A01"                 # 限度額適用 区分 (our guess at the code; the spec is vendor-only)

A certificate is matched by ``sha256`` first, then by ``subject_cn``. Number-based lookups (the clinic
files' ``req/``) search the ``insured`` tables (:meth:`Registry.find_insured`). The kiosk never sends
a name: everything a real terminal fills from the national system comes from these tables. Registration
(:meth:`Registry.register`) is refused when the certificate ends within 5 days (or has ended), and
otherwise marks the certificate registered in memory only (the file is never written).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmware.card.certificate import AuthCertificate, CertificateError
from firmware.link.schemas import CONSENT_ITEMS, ConsentFlag, Eligibility
from hal.clock import JST

#: Registration at the reader is refused when the certificate ends within this long.
REGISTRATION_REFUSED_WITHIN = dt.timedelta(days=5)


class RegistryError(ValueError):
    """The registry file cannot be read or does not have the documented shape."""


def _no_controls(value: str | None) -> str | None:
    if value is not None and any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ValueError("must not contain control characters (one line of text)")
    return value


class InsuredRecord(BaseModel):
    """One holder's insurance as the national system answers it (ResultOfQualificationConfirmation).

    Codes are the terminal's (as open clinic software reads them): ``card_classification`` 01 一般 …,
    ``personal_family`` 1 本人 / 2 家族, ``sex`` 1 男 / 2 女. Strings are one line each.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    card_classification: str = Field("01", pattern=r"^\d{2}$")
    insurer_number: str = Field(pattern=r"^( {2}\d{6}|\d{6}|\d{8})$")
    symbol: str = Field("", max_length=38)
    number: str = Field(min_length=1, max_length=38)
    branch: str = Field("", pattern=r"^(\d{2})?$")
    personal_family: Literal["1", "2"] = "1"
    insured_name: str | None = Field(None, max_length=100)  # 被保険者 (the family head for a 家族)
    name: str = Field(min_length=1, max_length=100)
    name_kana: str | None = Field(None, max_length=100)
    sex: Literal["1", "2", "3"] = "1"
    birthdate: dt.date
    address: str | None = Field(None, max_length=200)
    post_number: str | None = Field(None, pattern=r"^\d{3}-?\d{4}$")
    issued: dt.date | None = None  # InsuredCertificateIssuanceDate
    valid_from: dt.date | None = None  # InsuredCardValidDate
    valid_until: dt.date | None = None  # InsuredCardExpirationDate
    share_percent: int = Field(30, ge=0, le=100)  # InsuredPartialContributionRatio
    preschool: str | None = Field(None, max_length=1)
    reason_of_loss: str | None = Field(None, max_length=2)
    elderly_share_percent: int | None = Field(None, ge=0, le=100)
    limit_category: str | None = Field(None, pattern=r"^[A-Za-z0-9]{1,4}$")

    @field_validator("insurer_number")
    @classmethod
    def _padded(cls, value: str) -> str:
        return value.rjust(8)  # 6-digit 国保 numbers are left-padded with spaces to 8 (as the files carry them)

    @field_validator("symbol", "number", "insured_name", "name", "name_kana", "address")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return _no_controls(value)


class RegistryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    subject_cn: str | None = Field(None, min_length=1, max_length=128)
    registered: bool = True
    previous_consent_at: dt.datetime | None = None
    previous_consent: dict[str, ConsentFlag] | None = None
    eligibility: Eligibility | None = Eligibility.VALID
    qualification_validity: int | None = Field(None, ge=1, le=5)
    insured: InsuredRecord | None = None

    @field_validator("previous_consent_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=JST) if value is not None and value.tzinfo is None else value

    @field_validator("previous_consent")
    @classmethod
    def _items(cls, value: dict | None) -> dict | None:
        if value is not None:
            unknown = sorted(set(value) - set(CONSENT_ITEMS))
            if unknown:
                raise ValueError(f"previous_consent: not ORCA consent items: {', '.join(unknown)}")
            value = {item: value.get(item, ConsentFlag.NO) for item in CONSENT_ITEMS}
        return value

    @model_validator(mode="after")
    def _one_key(self) -> RegistryEntry:
        if (self.sha256 is None) == (self.subject_cn is None):
            raise ValueError("give exactly one of sha256 or subject_cn")
        if self.sha256 is not None:
            self.sha256 = self.sha256.lower()
        if self.qualification_validity is not None:
            self.eligibility = Eligibility.from_qualification_validity(self.qualification_validity)
        if self.previous_consent is not None and self.previous_consent_at is None:
            raise ValueError("previous_consent needs previous_consent_at (when it was given)")
        if self.previous_consent_at is not None and self.previous_consent is None:
            self.previous_consent = dict.fromkeys(CONSENT_ITEMS, ConsentFlag.YES)
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate: list[RegistryEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Context:
    registered: bool | None
    previous_consent_at: dt.datetime | None
    eligibility: Eligibility | None
    previous_consent: dict[str, ConsentFlag] | None = None


@dataclass(frozen=True)
class Answer:
    """The eligibility answer as the clinic files carry it: QualificationValidity and the record."""

    validity: int | None  # 1 有効, 2 無効, 3 無効(新しい資格あり), 4 該当資格なし, 5 複数該当; None: no answer
    insured: InsuredRecord | None = None


def validity_code(entry: RegistryEntry) -> int | None:
    if entry.qualification_validity is not None:
        return entry.qualification_validity
    return {Eligibility.VALID: 1, Eligibility.INVALID: 2, Eligibility.NO_RECORD: 4}.get(entry.eligibility)


def normal_insurer(number: str) -> str:
    """An insurer number as the files carry it: 8 characters, a 6-digit one left-padded with spaces."""
    return number.strip().rjust(8)


def cert_sha256(cert_der: bytes) -> str:
    return hashlib.sha256(bytes(cert_der)).hexdigest()


def _subject_cn(certificate: AuthCertificate) -> str | None:
    names = certificate.x509.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class Registry:
    """Entries by SHA-256 and by subject CN; registrations made at the reader are kept in memory."""

    def __init__(self, entries: list[RegistryEntry] | tuple[RegistryEntry, ...] = ()):
        self._by_sha = {e.sha256: e for e in entries if e.sha256}
        self._by_cn = {e.subject_cn: e for e in entries if e.subject_cn}
        self._registered_now: set[str] = set()  # SHA-256 of certificates registered at a reader
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
            return cls(_File.model_validate(data).certificate)
        except (OSError, ValueError, ValidationError) as exc:  # tomllib/json errors are ValueErrors
            raise RegistryError(f"registry {path}: {exc}") from exc

    def put(self, entry: RegistryEntry) -> None:
        """Add or replace one entry (demos and tests set up a card's history this way)."""
        with self._lock:
            if entry.sha256:
                self._by_sha[entry.sha256] = entry
                self._registered_now.discard(entry.sha256)
            if entry.subject_cn:
                self._by_cn[entry.subject_cn] = entry

    def _entry(self, certificate: AuthCertificate, sha: str) -> RegistryEntry | None:
        entry = self._by_sha.get(sha)
        if entry is None:
            cn = _subject_cn(certificate)
            entry = self._by_cn.get(cn) if cn else None
        return entry

    def context(self, cert_der: bytes) -> Context:
        """What the terminal answers to a context request (an unreadable certificate: nothing known)."""
        try:
            certificate = AuthCertificate(bytes(cert_der))
        except CertificateError:
            return Context(None, None, None)
        sha = cert_sha256(cert_der)
        with self._lock:
            entry = self._entry(certificate, sha)
            registered_now = sha in self._registered_now
        if entry is None:
            return Context(True, None, Eligibility.VALID)
        return Context(entry.registered or registered_now, entry.previous_consent_at, entry.eligibility,
                       dict(entry.previous_consent) if entry.previous_consent else None)

    def eligibility(self, cert_der: bytes) -> Eligibility | None:
        return self.context(cert_der).eligibility

    def answer(self, cert_der: bytes) -> Answer:
        """The clinic-file answer for a certificate: unlisted → 有効 without a record; unreadable → none."""
        try:
            certificate = AuthCertificate(bytes(cert_der))
        except CertificateError:
            return Answer(None)
        with self._lock:
            entry = self._entry(certificate, cert_sha256(cert_der))
        return Answer(1) if entry is None else Answer(validity_code(entry), entry.insured)

    def find_insured(self, insurer_number: str, symbol: str, number: str, branch: str,
                     birthdate: dt.date | None) -> Answer:
        """A number-based lookup (req/): 4 該当資格なし without a match, 5 複数該当 with several.

        The symbol and branch only narrow the search when given; the birth date must match when given.
        """
        with self._lock:
            entries = {id(e): e for e in [*self._by_sha.values(), *self._by_cn.values()]}.values()
        hits = [e for e in entries if e.insured is not None
                and e.insured.insurer_number == normal_insurer(insurer_number)
                and e.insured.number == number.strip()
                and (not symbol.strip() or e.insured.symbol == symbol.strip())
                and (not branch.strip() or e.insured.branch == branch.strip())
                and (birthdate is None or e.insured.birthdate == birthdate)]
        if not hits:
            return Answer(4)
        if len(hits) > 1:
            return Answer(5)
        return Answer(validity_code(hits[0]), hits[0].insured)

    def register(self, cert_der: bytes, now: dt.datetime) -> tuple[bool, str | None]:
        """Register for insurance use: (ok, reason) with a :data:`REGISTRATION_REASONS` key."""
        try:
            certificate = AuthCertificate(bytes(cert_der))
        except CertificateError:
            return False, "certificate_unreadable"
        if certificate.not_after <= now:
            return False, "expired"
        if certificate.not_after - now <= REGISTRATION_REFUSED_WITHIN:
            return False, "expires_soon"
        if self.context(cert_der).registered:
            return True, "already_registered"
        with self._lock:
            self._registered_now.add(cert_sha256(cert_der))
        return True, None
