"""What the flow needs from a tapped card, read in one go, and the record it is kept in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from firmware.card.mynumber import MyNumberCard
from hal.contracts import CardLink


@dataclass
class CardFacts:
    """What the card layer read: enough for the result message and the screens, no personal data."""

    token_kind: str  # firmware.card.jpki.TokenKind value: card | face-only | android | iphone
    cert_der: bytes
    cert_status: str  # valid | expiring | grace | unusable
    subject: str = ""
    not_after: str = ""


def read_card_facts(link: CardLink, now: dt.datetime) -> CardFacts:
    """Token kind, user-authentication certificate and its status at ``now``.

    Raises the card layer's typed errors (CardRemoved, NotMyNumberCard, ReadError,
    SecurityStatusNotSatisfied for an Android token that needs its PIN first).
    """
    card = MyNumberCard(link)
    kind = card.read_token_kind()
    certificate = card.read_auth_certificate()
    return CardFacts(
        token_kind=kind.value,
        cert_der=certificate.der,
        cert_status=certificate.status_at(now, kind).value,
        subject=certificate.subject,
        not_after=certificate.not_after.isoformat(),
    )
