"""The terminal's trust anchors for user-authentication certificates: PEM files, folders, or ``jlis``.

Each source given to :func:`load_trust_anchors` is one of:

- ``jlis``: the J-LIS user-authentication roots shipped in ``terminal/trust/jlis/`` (production; the
  folder's README names their source and fingerprints);
- a PEM file holding one or more CA certificates (e.g. a test CA's ``auth_ca.pem``);
- a folder: every ``*.pem`` in it.

An anchor must be a CA certificate (basicConstraints CA); anything else is a :class:`TrustAnchorError`
naming the file, so a user certificate given by mistake is one clear line, not a silent "no anchor".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cryptography import x509

from firmware.errors import ConfigError

JLIS = "jlis"
JLIS_DIR = Path(__file__).resolve().parent / "jlis"
#: The user-authentication roots (2015 and 2023 generations); the signature roots are not anchors here.
JLIS_AUTH_FILES = ("auth_ca_2015.pem", "auth_ca_2023.pem")


class TrustAnchorError(ConfigError):
    """A trust anchor source is missing, unreadable or not a CA certificate in PEM."""


def load_pem_anchors(path: Path) -> tuple[x509.Certificate, ...]:
    """The CA certificates in one PEM file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustAnchorError(f"trust anchor {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TrustAnchorError(f"trust anchor {path}: not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TrustAnchorError(f"trust anchor {path}: {certificate.subject.rfc4514_string()[:120]} is not a CA "
                                   "certificate (no basicConstraints CA:TRUE); give the issuing CA, not a user's")
    return tuple(certificates)


def jlis_anchors() -> tuple[x509.Certificate, ...]:
    """The J-LIS user-authentication roots shipped with the terminal."""
    return tuple(anchor for name in JLIS_AUTH_FILES for anchor in load_pem_anchors(JLIS_DIR / name))


def load_trust_anchors(sources: Iterable[str | Path]) -> tuple[x509.Certificate, ...]:
    """Every anchor of ``sources`` (see the module docstring), duplicates removed, in order."""
    anchors: list[x509.Certificate] = []
    for source in sources:
        if str(source) == JLIS:
            found = jlis_anchors()
        else:
            path = Path(source)
            if path.is_dir():
                files = sorted(path.glob("*.pem"))
                if not files:
                    raise TrustAnchorError(f"trust anchor folder {path} holds no *.pem file")
                found = tuple(anchor for file in files for anchor in load_pem_anchors(file))
            elif path.exists():
                found = load_pem_anchors(path)
            else:
                raise TrustAnchorError(f"trust anchor {source}: no such file or folder "
                                       f"(give a PEM file, a folder of them, or {JLIS!r})")
        anchors.extend(anchor for anchor in found if anchor not in anchors)
    return tuple(anchors)


__all__ = ["JLIS", "JLIS_DIR", "TrustAnchorError", "jlis_anchors", "load_pem_anchors", "load_trust_anchors"]
