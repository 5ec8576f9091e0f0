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

A certificate is matched by ``sha256`` first, then by ``subject_cn``. Registration
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

from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmware.card.certificate import AuthCertificate, CertificateError
from firmware.link.schemas import CONSENT_ITEMS, ConsentFlag, Eligibility
from hal.clock import JST

#: Registration at the reader is refused when the certificate ends within this long.
REGISTRATION_REFUSED_WITHIN = dt.timedelta(days=5)


class RegistryError(ValueError):
    """The registry file cannot be read or does not have the documented shape."""


class RegistryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    subject_cn: str | None = Field(None, min_length=1, max_length=128)
    registered: bool = True
    previous_consent_at: dt.datetime | None = None
    previous_consent: dict[str, ConsentFlag] | None = None
    eligibility: Eligibility | None = Eligibility.VALID
    qualification_validity: int | None = Field(None, ge=1, le=5)

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
