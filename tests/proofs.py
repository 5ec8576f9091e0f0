"""Throw-away holders for link tests: a JPKI-shaped certificate with its key, a card CVC with its key,
and results that carry a real (or forged) proof over a nonce.

A face result's genuineness proof is what the kiosk makes (#11): the card's signature over the nonce
bound to the result's certificate; its threshold is the kiosk's calibrated one."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from firmware.card.genuineness import genuineness_data
from firmware.link.schemas import Challenge, Method, ResultMessage
from hal.sim.card.cvc_build import build_cvc
from hal.sim.card.throwaway_pki import CVC_TEST_ISSUER_ID, ThrowAwayCa, new_rsa_key, user_certificate


def sign(key: rsa.RSAPrivateKey, nonce: bytes) -> bytes:
    """What the card returns: PKCS#1 v1.5 over SHA-256 DigestInfo(nonce)."""
    return key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())


@dataclass
class Holder:
    key: rsa.RSAPrivateKey
    cert_der: bytes
    card_key: rsa.RSAPrivateKey
    cvc: bytes

    @property
    def cert_b64(self) -> str:
        return base64.b64encode(self.cert_der).decode()


class Pki:
    """One CA and one CVC issuer; ``holder(days_left)`` makes a certificate ending that many days from now.

    Holders take turns over two certificate keys and two card keys (keys are slow to make; the
    certificates differ anyway), so two holders in a row are two different cards.
    """

    def __init__(self):
        self.now = dt.datetime.now(dt.UTC)
        self.ca = ThrowAwayCa.create("user authentication", self.now)
        self.issuer_key = new_rsa_key()
        self._keys = [new_rsa_key(), new_rsa_key()]
        self._card_keys = [new_rsa_key(), new_rsa_key()]
        self.card_key = self._card_keys[0]
        self._next = 0

    @property
    def issuer_keys(self) -> dict[str, rsa.RSAPublicKey]:
        return {CVC_TEST_ISSUER_ID: self.issuer_key.public_key()}

    @property
    def anchors(self) -> tuple:
        """The test CA as the terminal's trust anchor."""
        return (self.ca.certificate,)

    def holder(self, days_left: float = 365.0, *, days_valid: float = 30.0) -> Holder:
        """A card whose certificate began ``days_valid`` days ago and ends ``days_left`` days from now."""
        key = self._keys[self._next % len(self._keys)]
        card_key = self._card_keys[self._next % len(self._card_keys)]
        self._next += 1
        cert = user_certificate(self.ca, key, purpose="user authentication",
                                not_before=self.now - dt.timedelta(days=days_valid),
                                not_after=self.now + dt.timedelta(days=days_left))
        today = self.now.date()
        cvc = build_cvc(issuer_key=self.issuer_key, issuer_reference=CVC_TEST_ISSUER_ID,
                        card_public_key=card_key.public_key(), holder_reference=f"TESTCARD{self._next:04d}",
                        effective=today - dt.timedelta(days=30), expiry=today + dt.timedelta(days=3650))
        return Holder(key, cert.public_bytes(serialization.Encoding.DER), card_key, cvc)


def pin_result(holder: Holder, challenge: Challenge | None, *, forged: bool = False, site: str = "s1",
               reader: str = "r1", **fields) -> ResultMessage:
    nonce = challenge.nonce if challenge else b"kiosk-made nonce, not the terminal's"
    signature = sign(holder.key if not forged else new_rsa_key(), nonce)
    values = dict(site=site, reader=reader, method=Method.PIN, card_kind="card", cert_der_b64=holder.cert_b64,
                  cert_status="valid", challenge_id=challenge.id if challenge else None,
                  fresh=challenge is not None, nonce_b64=base64.b64encode(nonce).decode(),
                  signature_b64=base64.b64encode(signature).decode())
    return ResultMessage(**(values | fields))


def genuineness(card: Holder, nonce: bytes, cert_der: bytes) -> bytes:
    """What ``card``'s 券面AP returns when the kiosk binds ``nonce`` to the certificate ``cert_der``."""
    return sign(card.card_key, genuineness_data(nonce, cert_der))


def face_result(holder: Holder, challenge: Challenge | None, *, site: str = "s1", reader: str = "r1",
                **fields) -> ResultMessage:
    from terminal.verify import kiosk_face_threshold

    nonce = challenge.nonce if challenge else b"kiosk-made nonce"
    values = dict(site=site, reader=reader, method=Method.FACE, card_kind="card", cert_der_b64=holder.cert_b64,
                  cert_status="valid", challenge_id=challenge.id if challenge else None,
                  fresh=challenge is not None, nonce_b64=base64.b64encode(nonce).decode(),
                  genuineness_b64=base64.b64encode(genuineness(holder, nonce, holder.cert_der)).decode(),
                  cvc_b64=base64.b64encode(holder.cvc).decode(), face_live=True,
                  face_score=0.8)
    if "face_threshold" not in fields:
        values["face_threshold"] = kiosk_face_threshold()
    return ResultMessage(**(values | fields))
