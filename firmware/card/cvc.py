"""Card-verifiable certificates (tag ``7F21``, 券面 AP EF 0004) and the card-genuineness check.

The real EF 0004 layout is not public; the project's encoding (ISO 7816-8 / BSI TR-03110 style)
is documented in ``hal/sim/card/cvc_build.py``: body ``7F4E`` (profile ``5F29``, issuer reference
``42``, public key ``7F49`` with modulus ``81`` and exponent ``82``, holder ``5F20``, effective
``5F25`` and expiry ``5F24`` as six BCD digits YYMMDD), then signature ``5F37`` — RSASSA-PKCS1-v1_5
with SHA-256 over the whole body TLV, by the issuer. Issuer keys are trusted by reference (the
card's CAR), loaded from PEM files named ``<CAR>.pem``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from firmware.card import tlv
from firmware.errors import CardError, ReadError
from hal.clock import JST

log = logging.getLogger(__name__)

RSA_ENCRYPTION_OID = bytes.fromhex("2A864886F70D010101")


class CvcError(ReadError, ValueError):
    """EF 0004 does not hold a well-formed card-verifiable certificate."""


class CardNotGenuine(CardError, ValueError):
    """The card's certificate or its challenge signature does not verify: not a genuine card."""


@dataclass(frozen=True)
class CardVerifiableCertificate:
    issuer_reference: str
    holder_reference: str
    public_key: rsa.RSAPublicKey = field(repr=False)
    effective: dt.date
    expiry: dt.date
    body: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    raw: bytes = field(repr=False)

    def verify(self, issuer_keys: Mapping[str, rsa.RSAPublicKey], today: dt.date | None = None) -> None:
        """Check the issuer's signature and the validity dates; raises :class:`CardNotGenuine`."""
        key = issuer_keys.get(self.issuer_reference)
        if key is None:
            raise CardNotGenuine(f"card certificate issued by {self.issuer_reference!r}, which is not a "
                                 f"trusted issuer ({', '.join(sorted(issuer_keys)) or 'none configured'})")
        try:
            key.verify(self.signature, self.body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise CardNotGenuine("the card certificate's signature does not verify with its issuer key") from exc
        today = today or dt.datetime.now(JST).date()
        if not self.effective <= today <= self.expiry:
            raise CardNotGenuine(f"the card certificate is valid {self.effective}..{self.expiry}, not on {today}")


def _bcd_date(value: bytes, what: str) -> dt.date:
    if len(value) != 6 or any(b > 9 for b in value):
        raise CvcError(f"{what} must be 6 BCD digits YYMMDD")
    yy, mm, dd = value[0] * 10 + value[1], value[2] * 10 + value[3], value[4] * 10 + value[5]
    try:
        return dt.date(2000 + yy, mm, dd)
    except ValueError as exc:
        raise CvcError(f"{what} is not a date: {exc}") from exc


def _ascii(value: bytes, what: str) -> str:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CvcError(f"{what} is not ASCII") from exc
    if not text.isprintable():
        raise CvcError(f"{what} has control characters")
    return text


def parse_cvc(raw: bytes) -> CardVerifiableCertificate:
    """Decode a ``7F21`` certificate; raises :class:`CvcError` (a ReadError) on any malformation."""
    outer = tlv.parse_exact(bytes(raw))
    if outer.tag != 0x7F21:
        raise CvcError(f"EF 0004 starts with tag {outer.tag:X}, not 7F21")
    parts = tlv.index(outer.children())
    if 0x7F4E not in parts or 0x5F37 not in parts:
        raise CvcError("the card certificate lacks its body (7F4E) or signature (5F37)")
    body = tlv.index(parts[0x7F4E].children())
    for tag in (0x42, 0x7F49, 0x5F20, 0x5F25, 0x5F24):
        if tag not in body:
            raise CvcError(f"the card certificate body lacks tag {tag:X}")
    key_items = tlv.index(body[0x7F49].children())
    if key_items.get(0x06) is None or key_items[0x06].value != RSA_ENCRYPTION_OID:
        raise CvcError("the card key is not an RSA key (7F49/06)")
    if 0x81 not in key_items or 0x82 not in key_items:
        raise CvcError("the card key lacks its modulus (81) or exponent (82)")
    n = int.from_bytes(key_items[0x81].value, "big")
    e = int.from_bytes(key_items[0x82].value, "big")
    if n.bit_length() < 1024 or e < 3 or e % 2 == 0 or n % 2 == 0:
        raise CvcError("the card key's modulus or exponent is implausible")
    try:
        public_key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise CvcError(f"the card key is not a valid RSA key: {exc}") from exc
    return CardVerifiableCertificate(
        issuer_reference=_ascii(body[0x42].value, "issuer reference"),
        holder_reference=_ascii(body[0x5F20].value, "holder reference"),
        public_key=public_key,
        effective=_bcd_date(body[0x5F25].value, "effective date"),
        expiry=_bcd_date(body[0x5F24].value, "expiry date"),
        body=parts[0x7F4E].raw,
        signature=parts[0x5F37].value,
        raw=bytes(raw),
    )


def load_issuer_keys(directory: str | Path) -> dict[str, rsa.RSAPublicKey]:
    """Trusted CVC issuer keys: every ``<issuer reference>.pem`` (public key) in ``directory``."""
    keys: dict[str, rsa.RSAPublicKey] = {}
    for path in sorted(Path(directory).glob("*.pem")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as exc:
            raise CvcError(f"{path} is not a PEM public key: {exc}") from exc
        if isinstance(key, rsa.RSAPublicKey):
            keys[path.stem] = key
    return keys
