"""The reference terminal's checks of a result's proof: single-use challenges and signatures.

- :class:`ChallengeBook` issues challenges (32 random bytes, a lifetime) to one reader and redeems
  each at most once: a result whose challenge is unknown, issued to another reader, already used,
  expired on arrival or paired with another nonce is not *fresh*. That alone does not fail the
  proof; it adds a ``freshness unverified: …`` problem (a result kept in the kiosk's outbox while
  the broker was away arrives after its challenge expired, and is still the holder's).
- :func:`verify_result` checks the holder's proof over the result's nonce. PIN and smartphone: the
  JPKI signature (PKCS#1 v1.5, SHA-256) against the certificate's key. Face: the card's 券面AP
  signature against its CVC's key, and the CVC against the trusted issuer keys when the terminal
  has any (otherwise an ``unverified issuer`` problem). A visual check by staff and a bare read
  carry no proof: ``verified`` is None.

Not checked here: the certificate's chain to the JPKI CA and its revocation (the real terminal asks
the J-LIS service), and that the CVC belongs to the same card as the certificate.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from firmware.card.certificate import AuthCertificate, CertificateError
from firmware.card.cvc import CardNotGenuine, CvcError, parse_cvc
from firmware.link.schemas import Challenge, Method, ResultMessage, now_utc
from hal.clock import JST

NONCE_BYTES = 32


@dataclass
class _Issued:
    nonce: bytes
    expires: dt.datetime
    reader: tuple[str, str]
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
                self._issued[challenge.id] = _Issued(nonce, challenge.expires, (site, reader))
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


def _rsa_ok(key: rsa.RSAPublicKey, signature: bytes, nonce: bytes) -> bool:
    try:
        key.verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_result(result: ResultMessage, book: ChallengeBook,
                  issuer_keys: Mapping[str, rsa.RSAPublicKey] | None = None,
                  now: dt.datetime | None = None) -> Verification:
    """Check the result's proof (see the module docstring); never raises on what the kiosk sent."""
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

    verified = True
    if result.method == Method.FACE:
        verified = _face(result, nonce, issuer_keys, now, problems)
    else:  # PIN, smartphone: the JPKI authentication key signed the nonce
        signature = _b64(result.signature_b64)
        try:
            key = AuthCertificate(_b64(result.cert_der_b64) or b"").public_key
        except CertificateError:
            key = None
            problems.append("the certificate does not parse")
        if signature is None:
            problems.append("no signature over the nonce")
        if key is None or signature is None:
            verified = False
        elif not _rsa_ok(key, signature, nonce):
            problems.append("the signature over the nonce does not verify with the certificate's key")
            verified = False
    return Verification(verified, fresh, tuple(p[:240] for p in problems))


def _face(result: ResultMessage, nonce: bytes, issuer_keys, now: dt.datetime, problems: list[str]) -> bool:
    ok = True
    if result.face_live is False:
        problems.append("the kiosk did not confirm a live face")
        ok = False
    genuineness, raw_cvc = _b64(result.genuineness_b64), _b64(result.cvc_b64)
    if genuineness is None or raw_cvc is None:
        problems.append("no card genuineness proof (signature and CVC)")
        return False
    try:
        cvc = parse_cvc(raw_cvc)
    except CvcError:
        problems.append("the card's CVC does not parse")
        return False
    if not _rsa_ok(cvc.public_key, genuineness, nonce):
        problems.append("the card's signature over the nonce does not verify with its CVC key")
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
