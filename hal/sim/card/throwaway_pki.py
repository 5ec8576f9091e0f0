"""A throw-away test PKI for virtual cards: JPKI-shaped CAs, user certificates and a CVC issuer.

The certificates copy the *shape* of real JPKI ones (docs/reference/jlis-ca.md): the CA's DN
structure, a user-authentication certificate with a 23-character serial-like CN and no name,
keyUsage digitalSignature (critical), the JPKI certificate policy (critical), a DirName CRL
distribution point of a municipality, and notAfter at 23:59:59 Japan time. Every DN carries
``TEST`` so that no test certificate can be mistaken for a J-LIS one.

Keys are generated fresh unless the caller gives a cache folder; nothing here is committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import string
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from hal.clock import JST  # the one JST

log = logging.getLogger(__name__)

JPKI_AUTH_POLICY = "1.2.392.200149.8.5.1.3.30"
JPKI_SIGN_POLICY = "1.2.392.200149.8.5.1.1.10"
CPS_URI = "http://www.jpki.go.jp/cps.html"
CVC_TEST_ISSUER_ID = "6000023"  # test-card issuer ID (production ones are 5000023 / 5000033)

_AGENCY = "Japan Agency for Local Authority Information Systems TEST"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def ca_name(purpose: str) -> x509.Name:
    """``C=JP, O=JPKI, OU=JPKI for <purpose>, OU=<agency> TEST`` (the real CAs' DN shape)."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"JPKI for {purpose}"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _AGENCY),
    ])


class ThrowAwayCa:
    """One self-signed test CA (user authentication or digital signature) with its key."""

    def __init__(self, key: rsa.RSAPrivateKey, certificate: x509.Certificate):
        self.key = key
        self.certificate = certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @classmethod
    def create(cls, purpose: str, now: dt.datetime) -> ThrowAwayCa:
        key = new_rsa_key()
        name = ca_name(purpose)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            # back far enough that any card issued in the last ten years (and its certificates) nests inside
            .not_valid_before(now - dt.timedelta(days=365 * 11))
            .not_valid_after(now + dt.timedelta(days=365 * 12))
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, cache_dir: Path | None, purpose: str, now: dt.datetime) -> ThrowAwayCa:
        """Reuse the CA cached in ``cache_dir`` (``test_<purpose>_ca.{key,crt}.pem``) or make one."""
        if cache_dir is None:
            return cls.create(purpose, now)
        slug = purpose.replace(" ", "_")
        key_path = cache_dir / f"TEST_ONLY_{slug}_ca.key.pem"
        cert_path = cache_dir / f"TEST_ONLY_{slug}_ca.crt.pem"
        if key_path.is_file() and cert_path.is_file():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return cls(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        ca = cls.create(purpose, now)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key_path.write_bytes(pem_private(ca.key))
        cert_path.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
        return ca


def load_or_create_key(cache_dir: Path | None, name: str) -> rsa.RSAPrivateKey:
    """A cached throw-away RSA key (e.g. the CVC test issuer's), or a fresh one without a cache."""
    if cache_dir is None:
        return new_rsa_key()
    path = cache_dir / f"TEST_ONLY_{name}.key.pem"
    if path.is_file():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    key = new_rsa_key()
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem_private(key))
    return key


def serial_like_cn(rng: secrets.SystemRandom | None = None) -> str:
    """A 23-character CN shaped like the real ones (``308014E45JEFIG14104003A``)."""
    rng = rng or secrets.SystemRandom()
    alphabet = string.digits + string.ascii_uppercase
    return "3" + "".join(rng.choice(alphabet) for _ in range(22))


def end_of_day_jst(day: dt.date) -> dt.datetime:
    """23:59:59 Japan time on ``day`` (14:59:59 UTC): where JPKI certificates end."""
    return dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=JST).astimezone(dt.UTC)


def user_certificate(ca: ThrowAwayCa, key: rsa.RSAPrivateKey, *, purpose: str, not_before: dt.datetime,
                     not_after: dt.datetime, prefecture: str = "Tokyo TEST",
                     municipality: str = "Chiyoda-ku TEST", cn: str | None = None) -> x509.Certificate:
    """A user certificate shaped like JPKI's (authentication or signature, by ``purpose``)."""
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn or serial_like_cn()),
    ])
    crldp_name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"JPKI for {purpose}"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, prefecture),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{municipality} CRLDP"),
    ])
    policy = JPKI_AUTH_POLICY if purpose == "user authentication" else JPKI_SIGN_POLICY
    signature_usage = purpose != "user authentication"
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(4), "big") | 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.KeyUsage(True, signature_usage, False, False, False, False, False, False, False),
                       True)
        .add_extension(x509.CertificatePolicies([
            x509.PolicyInformation(x509.ObjectIdentifier(policy), [CPS_URI])]), True)
        .add_extension(x509.CRLDistributionPoints([
            x509.DistributionPoint([x509.DirectoryName(crldp_name)], None, None, None)]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return builder.sign(ca.key, hashes.SHA256())
