"""Card steps: read what a tap needs, check a PIN, sign the terminal's challenge.

The card object of a visit (:class:`~firmware.card.mynumber.MyNumberCard`) is kept across steps
so that the security state the card holds (PIN verified, 照合番号B verified) and what was read
(token kind, certificate) are used once per tap. Steps of one visit run one after another: the
flow starts the next only when the last has reported.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from firmware.card.jpki import TokenKind
from firmware.card.mynumber import MyNumberCard
from firmware.card.summary import CardFacts
from firmware.errors import PinBlocked, WrongPin
from firmware.flow.session import Proof
from firmware.secrets import SecretBuffer

NONCE_BYTES = 32


class PinNeeded(Exception):
    """An Android token: its smartphone PIN must be typed before its certificate can be read."""


@dataclass(frozen=True)
class Challenge:
    """A nonce to sign: the terminal's single-use challenge, or our own when none was left."""

    nonce: bytes
    challenge_id: str | None
    fresh: bool

    @classmethod
    def own(cls) -> Challenge:
        return cls(os.urandom(NONCE_BYTES), None, False)


def take_challenge(link) -> Challenge:
    """One challenge from the link's pool (never waits); our own nonce, marked not fresh, if empty."""
    take = getattr(link, "take_challenge", None)
    offered = take() if take is not None else None
    if offered is None:
        return Challenge.own()
    return Challenge(offered.nonce_bytes, offered.id, True)


def read_tap(card: MyNumberCard, now: dt.datetime, grace_rule: str, pin: SecretBuffer | None,
             challenge: callable) -> tuple[CardFacts, Proof | None]:
    """Token kind and certificate; a phone also proves itself by signing a challenge.

    Raises:
        PinNeeded: an Android token and no ``pin`` yet.
        WrongPin / PinBlocked: the smartphone PIN was refused (one try spent, never retried here).
        the card layer's errors (CardRemoved, NotMyNumberCard, ReadError, …).
    """
    kind = card.read_token_kind()
    try:
        if kind is TokenKind.ANDROID:
            if pin is None or not pin.full:
                raise PinNeeded("the smartphone certificate needs its PIN first")
            card.verify_pin_buffer(pin)
    finally:
        if pin is not None:
            pin.wipe()
    certificate = card.read_auth_certificate()
    status = certificate.status_at(now, kind, grace_rule)
    facts = CardFacts(token_kind=kind.value, cert_der=certificate.der, cert_status=status.value,
                      subject=certificate.subject, not_after=certificate.not_after.isoformat())
    proof = None
    if kind in (TokenKind.ANDROID, TokenKind.IPHONE) and status.value != "unusable":
        proof = sign_challenge(card, challenge())
    return facts, proof


def sign_challenge(card: MyNumberCard, challenge: Challenge) -> Proof:
    signature = card.sign_nonce(challenge.nonce)
    return Proof(nonce=challenge.nonce, challenge_id=challenge.challenge_id, fresh=challenge.fresh,
                 signature=signature)


def check_pin(card: MyNumberCard, pin: SecretBuffer, challenge: callable) -> Proof:
    """VERIFY the PIN once, then sign a challenge with the authentication key.

    Raises:
        WrongPin (tries_left) / PinBlocked: refused; the caller never retries on its own.
    """
    try:
        card.verify_pin_buffer(pin)
    finally:
        pin.wipe()
    return sign_challenge(card, challenge())


def pin_tries(card: MyNumberCard) -> int:
    """Tries left on the PIN, spending none. Raises PinBlocked at zero."""
    tries = card.pin_tries_left()
    if tries is None:
        raise PinBlocked("this token has no PIN")
    return tries


__all__ = ["Challenge", "PinBlocked", "PinNeeded", "WrongPin", "check_pin", "pin_tries", "read_tap",
           "sign_challenge", "take_challenge"]
