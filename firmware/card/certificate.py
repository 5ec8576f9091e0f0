"""The user-authentication certificate and where it stands against a clock.

Rules (docs/reference/card-protocol.md, "Certificate expiry rules"), compared in Japan time because
JPKI certificates end at 23:59:59 JST:

- ``VALID``: in its validity period, more than 3 months before notAfter;
- ``EXPIRING``: within 3 months before notAfter (the reader alerts the holder);
- ``GRACE``: expired, but not later than 3 months after — physical cards only (eligibility still
  works, consent to share medical information does not). The sources read the boundary two ways
  (eligibility-interface reference), so it is a rule: ``months`` ends 3 calendar months after the
  expiry day (the primary source, the default), ``month_end`` at the end of the month 3 months after;
- ``UNUSABLE``: any later, a smartphone certificate after expiry, or before notBefore.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import logging
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa

from firmware.errors import ReadError
from hal.clock import JST

log = logging.getLogger(__name__)

ALERT_MONTHS = 3
GRACE_MONTHS = 3
#: What ``cryptography`` may raise on a malformed certificate (some are not ValueErrors).
_X509_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
                x509.UnsupportedGeneralNameType, x509.InvalidVersion)  # InvalidVersion is no ValueError


class CertificateError(ReadError, ValueError):
    """The card's certificate EF does not hold a usable X.509 certificate."""


class CertStatus(enum.Enum):
    VALID = "valid"
    EXPIRING = "expiring"
    GRACE = "grace"
    UNUSABLE = "unusable"


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar month arithmetic, clamping the day (31 May - 3 months = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


GRACE_RULES = ("months", "month_end")


def grace_end(not_after: dt.datetime, rule: str = "months") -> dt.datetime:
    """Last instant of the grace period (JST): 3 months after the expiry day (``months``), or the
    end of the month 3 months after the expiry month (``month_end``)."""
    if rule not in GRACE_RULES:
        raise ValueError(f"grace rule must be one of {GRACE_RULES}, not {rule!r}")
    expiry_day = not_after.astimezone(JST).date()
    if rule == "months":
        end_day = add_months(expiry_day, GRACE_MONTHS)
        return dt.datetime(end_day.year, end_day.month, end_day.day, 23, 59, 59, 999999, tzinfo=JST)
    last_of_month = dt.date(expiry_day.year, expiry_day.month,
                            calendar.monthrange(expiry_day.year, expiry_day.month)[1])
    end_day = add_months(last_of_month.replace(day=1), GRACE_MONTHS)
    end_day = end_day.replace(day=calendar.monthrange(end_day.year, end_day.month)[1])
    return dt.datetime(end_day.year, end_day.month, end_day.day, 23, 59, 59, 999999, tzinfo=JST)


def alert_from(not_after: dt.datetime) -> dt.datetime:
    """First instant of ``EXPIRING`` (JST): the same time of day, 3 calendar months before notAfter."""
    after_jst = not_after.astimezone(JST)
    return dt.datetime.combine(add_months(after_jst.date(), -ALERT_MONTHS), after_jst.timetz())


def status_at(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime,
              grace_allowed: bool, grace_rule: str = "months") -> CertStatus:
    """Where a certificate valid ``[not_before, not_after]`` stands at ``now`` (aware datetimes)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (a naive clock cannot be put in Japan time)")
    now_jst = now.astimezone(JST)
    if now_jst < not_before.astimezone(JST):
        return CertStatus.UNUSABLE
    after_jst = not_after.astimezone(JST)
    if now_jst <= after_jst:
        return CertStatus.EXPIRING if now_jst >= alert_from(not_after) else CertStatus.VALID
    if grace_allowed and now_jst <= grace_end(not_after, grace_rule):
        return CertStatus.GRACE
    return CertStatus.UNUSABLE


@dataclass(frozen=True)
class AuthCertificate:
    """A user-authentication certificate (JPKI EF 000A) as read from the card."""

    der: bytes = field(repr=False)

    def __post_init__(self) -> None:
        try:
            certificate = x509.load_der_x509_certificate(bytes(self.der))
            # Decode now everything later code reads, so a bad certificate fails here, typed.
            subject = certificate.subject.rfc4514_string()
            issuer = certificate.issuer.rfc4514_string()
            certificate.not_valid_before_utc  # noqa: B018
            certificate.not_valid_after_utc  # noqa: B018
            key = certificate.public_key()
        except _X509_ERRORS as exc:
            raise CertificateError(f"EF 000A is not a usable DER X.509 certificate: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise CertificateError("the certificate's key is not RSA (JPKI certificates are RSA-2048)")
        object.__setattr__(self, "_certificate", certificate)
        object.__setattr__(self, "_names", (subject, issuer))
        object.__setattr__(self, "_key", key)

    @property
    def x509(self) -> x509.Certificate:
        return self._certificate  # type: ignore[attr-defined]

    @property
    def subject(self) -> str:
        return self._names[0]  # type: ignore[attr-defined]

    @property
    def issuer(self) -> str:
        return self._names[1]  # type: ignore[attr-defined]

    @property
    def serial(self) -> int:
        return self.x509.serial_number

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"

    @property
    def not_before(self) -> dt.datetime:
        return self.x509.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.x509.not_valid_after_utc

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key  # type: ignore[attr-defined]

    def status_at(self, now: dt.datetime, token_kind, grace_rule: str = "months") -> CertStatus:
        """Status at ``now``; the 3-month grace applies only when ``token_kind`` is a physical card."""
        return status_at(self.not_before, self.not_after, now, bool(token_kind.is_physical_card), grace_rule)

    def __repr__(self) -> str:
        return f"AuthCertificate(serial={self.serial_hex}, not_after={self.not_after.isoformat()})"
