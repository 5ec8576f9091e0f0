"""The reference terminal's checks of a result's proof, each failure with its reason.

- :class:`ChallengeBook` issues challenges (32 random bytes, a lifetime) to one reader and redeems
  each at most once: a result whose challenge is unknown, issued to another reader, already used,
  expired on arrival or paired with another nonce is not *fresh*. That alone does not fail the
  proof; it adds a ``freshness unverified: …`` problem (a result kept in the kiosk's outbox while
  the broker was away arrives after its challenge expired, and is still the holder's).
- :func:`verify_result` checks, for a face, PIN or smartphone result:

  - the **certificate** (:mod:`terminal.certificates`): issued directly by one of the configured
    trust anchors (the test CA in demos and tests, the J-LIS roots in production; with none, a
    ``chain unverified`` problem), its status recomputed for the check-in in Japan time with the
    kiosk's grace rule and compared with the claimed ``cert_status``, what that status allows
    (unusable fails; grace allows an eligibility-only result without consent), and that the method
    fits the token kind (no grace for a smartphone);
  - PIN and smartphone: the JPKI signature (PKCS#1 v1.5, SHA-256) over the nonce with the
    certificate's key;
  - face: the card's 券面AP signature with its CVC's key over the nonce **bound to the result's
    certificate** (:func:`firmware.card.genuineness.genuineness_data`), so a result that pairs one
    card's certificate with another card's proof, or one result's certificate with another's proof,
    fails; the CVC against the trusted issuer keys when the terminal has any (otherwise an
    ``unverified issuer`` problem); the face score above the threshold the result claims, and that
    threshold not below the terminal's minimum (default: the calibrated threshold of the kiosk's
    rule in ``models/manifest.toml``); and that the kiosk saw a live face.

  A visual check by staff and a bare read carry no proof: ``verified`` is None.

Not checked here: revocation (J-LIS's CRL/OCSP service is online only; ``revoked`` is the hook), and
that the certificate and the genuineness proof came from one physical card: the binding stops a
result assembled from two taps or two results, not a relay device that answers an honest kiosk's
JPKI AP with one card and its 券面AP with another (docs/notes/proofs.md).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from firmware.card.certificate import AuthCertificate, CertificateError
from firmware.card.cvc import CardNotGenuine, CvcError, parse_cvc
from firmware.card.genuineness import genuineness_data
from firmware.card.tlv import TlvError
from firmware.errors import ModelError
from firmware.link.schemas import Challenge, Method, ResultMessage, now_utc
from hal.clock import JST
from terminal.certificates import RevocationCheck, check_certificate, checkin_time

NONCE_BYTES = 32


@dataclass
class _Issued:
    nonce: bytes
    expires: dt.datetime
    reader: tuple[str, str]
    issued_at: dt.datetime
    used_by: str | None = None


class ChallengeBook:
    """Challenges this terminal issued (the latest ``keep`` of them), each redeemable once."""

    def __init__(self, ttl_s: float = 300.0, keep: int = 100_000):
        self.ttl = dt.timedelta(seconds=ttl_s)
        self.keep = keep
        self._issued: OrderedDict[str, _Issued] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, site: str, reader: str, count: int, now: dt.datetime | None = None) -> list[Challenge]:
        now = now or now_utc()
        out = []
        with self._lock:
            for _ in range(count):
                nonce = secrets.token_bytes(NONCE_BYTES)
                challenge = Challenge(id=str(uuid.uuid4()), nonce_b64=base64.b64encode(nonce).decode(),
                                      expires=now + self.ttl)
                self._issued[challenge.id] = _Issued(nonce, challenge.expires, (site, reader), now)
                out.append(challenge)
            while len(self._issued) > self.keep:
                self._issued.popitem(last=False)
        return out

    def redeem(self, challenge_id: str, nonce: bytes, site: str, reader: str, result_id: str,
               now: dt.datetime | None = None) -> str | None:
        """Spend the challenge for ``result_id``; None if fresh, else why not (our words)."""
        now = now or now_utc()
        with self._lock:
            issued = self._issued.get(challenge_id)
            if issued is None:
                return "the challenge was not issued by this terminal"
            if issued.reader != (site, reader):
                return "the challenge was issued to another reader"
            if not secrets.compare_digest(issued.nonce, nonce):
                return "the nonce is not the challenge's"
            if issued.used_by is not None and issued.used_by != result_id:
                return "the challenge was used before"
            issued.used_by = result_id
            if now > issued.expires:
                return "the challenge had expired when the result arrived"
        return None

    def issued_at(self, challenge_id: str) -> dt.datetime | None:
        """When the challenge was issued (None: not one of ours, or forgotten)."""
        with self._lock:
            issued = self._issued.get(challenge_id)
            return issued.issued_at if issued is not None else None

    @property
    def issued(self) -> int:
        with self._lock:
            return len(self._issued)


@dataclass(frozen=True)
class Verification:
    """``verified``: the proof holds (None: nothing to verify); ``fresh``: over an unused challenge of ours."""

    verified: bool | None
    fresh: bool
    problems: tuple[str, ...] = ()


def _b64(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _rsa_ok(key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is PKCS#1 v1.5 over DigestInfo(SHA-256(``data``)) by ``key``."""
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=4)
def _manifest_threshold(directory: str) -> float:
    from firmware.face.models import Manifest

    return Manifest(directory).threshold()


def kiosk_face_threshold() -> float:
    """The calibrated threshold of the kiosk's decision rule (``models/manifest.toml``, read once).

    Raises:
        ModelError: no manifest, or the kiosk's rule was never calibrated.
    """
    from firmware.face.models import models_dir

    return _manifest_threshold(str(models_dir()))


def verify_result(result: ResultMessage, book: ChallengeBook,
                  issuer_keys: Mapping[str, rsa.RSAPublicKey] | None = None,
                  now: dt.datetime | None = None, *, anchors: Sequence[x509.Certificate] = (),
                  grace_rule: str = "months", min_face_threshold: float | None = None,
                  revoked: RevocationCheck | None = None) -> Verification:
    """Check the result's proof (see the module docstring); never raises on what the kiosk sent.

    Args:
        issuer_keys: trusted CVC issuer keys by issuer reference (face path).
        anchors: trusted CA certificates for the user-authentication certificate.
        grace_rule: the kiosk's grace boundary (``[card] grace_rule``: ``months`` or ``month_end``).
        min_face_threshold: the lowest face threshold a result may claim; None = the kiosk's
            calibrated one (:func:`kiosk_face_threshold`).
        revoked: a revocation lookup (certificate → reason or None); None = not checked.
    """
    now = now or now_utc()
    if result.method in (Method.VISUAL, Method.NONE):
        return Verification(None, False, ())
    problems: list[str] = []
    nonce = _b64(result.nonce_b64)
    if not nonce:
        return Verification(False, False, ("no nonce: nothing was signed",))

    fresh = False
    if not result.fresh or result.challenge_id is None:
        problems.append("freshness unverified: the kiosk had no challenge of the terminal's")
    else:
        why = book.redeem(result.challenge_id, nonce, result.site, result.reader, result.id, now)
        fresh = why is None
        if why:
            problems.append(f"freshness unverified: {why}")

    cert_der = _b64(result.cert_der_b64) or b""
    try:
        certificate = AuthCertificate(cert_der)
    except CertificateError:
        certificate = None
        problems.append("the certificate does not parse")
    verified = certificate is not None
    if certificate is not None:
        at = checkin_time(result, now, book.issued_at(result.challenge_id) if fresh else None)
        verified &= check_certificate(result, certificate, anchors=anchors, grace_rule=grace_rule, at=at,
                                      problems=problems, revoked=revoked)
    if result.method == Method.FACE:
        verified &= _face(result, nonce, cert_der, issuer_keys, min_face_threshold, now, problems)
    else:  # PIN, smartphone: the JPKI authentication key signed the nonce
        signature = _b64(result.signature_b64)
        if signature is None:
            problems.append("no signature over the nonce")
            verified = False
        elif certificate is not None and not _rsa_ok(certificate.public_key, signature, nonce):
            problems.append("the signature over the nonce does not verify with the certificate's key")
            verified = False
    return Verification(bool(verified), fresh, tuple(p[:240] for p in problems))


def _face(result: ResultMessage, nonce: bytes, cert_der: bytes, issuer_keys, min_threshold: float | None,
          now: dt.datetime, problems: list[str]) -> bool:
    ok = True
    if result.face_live is False:
        problems.append("the kiosk did not confirm a live face")
        ok = False
    ok &= _face_score(result, min_threshold, problems)
    genuineness, raw_cvc = _b64(result.genuineness_b64), _b64(result.cvc_b64)
    if genuineness is None or raw_cvc is None:
        problems.append("no card genuineness proof (signature and CVC)")
        return False
    try:
        cvc = parse_cvc(raw_cvc)
    except (CvcError, TlvError):  # a malformed TLV is no CVC either
        problems.append("the card's CVC does not parse")
        return False
    if not cert_der or not _rsa_ok(cvc.public_key, genuineness, genuineness_data(nonce, cert_der)):
        if _rsa_ok(cvc.public_key, genuineness, nonce):
            problems.append("the card's signature covers the nonce alone, not the result's certificate "
                            "(a kiosk of before): the two may come from different cards")
        else:
            problems.append("the card's signature does not verify over the nonce and the result's certificate: "
                            "the proof belongs to another tap, card or result, or was altered")
        ok = False
    if issuer_keys:
        try:
            cvc.verify(issuer_keys, now.astimezone(JST).date())
        except CardNotGenuine as exc:
            problems.append(f"card certificate: {exc}")
            ok = False
    else:
        problems.append("unverified issuer: the terminal has no CVC issuer keys")
    return ok


def _face_score(result: ResultMessage, min_threshold: float | None, problems: list[str]) -> bool:
    """The score above the threshold the result claims, and that threshold not below ours."""
    score, threshold = result.face_score, result.face_threshold
    if score is None or threshold is None:
        problems.append("a face result without its face score and threshold")
        return False
    ok = True
    if min_threshold is None:
        try:
            min_threshold = kiosk_face_threshold()
        except ModelError as exc:
            problems.append(f"the terminal has no face threshold to judge by: {exc}")
            return False
    if threshold < min_threshold:
        problems.append(f"the face threshold {threshold:.6g} the result claims is below the terminal's "
                        f"minimum {min_threshold:.6g}")
        ok = False
    if not score > threshold:  # the kiosk's rule: a match is a score above the threshold
        problems.append(f"the face score {score:.6g} is not above the threshold {threshold:.6g} it claims")
        ok = False
    return ok
