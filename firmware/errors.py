"""Errors raised by the firmware layer; the hierarchy's root lives in :mod:`hal.errors`.

The flow turns each class into a screen (``ui/`` maps classes to translated text), so a class here
is a user-visible situation, and its message is for logs and technicians, never for the screen.
"""

import enum

from hal.errors import CardRemoved, HalError, LinkTimeout, UketsukeError

__all__ = [
    "UketsukeError", "HalError", "CardRemoved", "LinkTimeout",
    "ConfigError", "CardError", "NotMyNumberCard", "ReadError", "SecurityStatusNotSatisfied",
    "WrongPin", "PinBlocked", "CollationRefused", "FaceError", "ModelError", "LinkError",
    "MessageError", "OutboxError", "CommandRefused",
]


class ConfigError(UketsukeError, ValueError):
    """config.toml is missing, unreadable, or has a wrong key or value."""


class CardError(UketsukeError):
    """Base of errors from talking to a My Number card or smartphone token."""


class NotMyNumberCard(CardError, ValueError):
    """The card in the field has no JPKI application: not a My Number card (or phone)."""


class ReadError(CardError, OSError):
    """The card answered with an unexpected status word or malformed data."""

    def __init__(self, message: str, sw: int | None = None):
        super().__init__(message)
        self.sw = sw


class SecurityStatusNotSatisfied(CardError, PermissionError):
    """The card refused: the PIN (or 照合番号B) must be verified first (SW 6982)."""


class WrongPin(CardError, PermissionError):
    """The PIN was wrong (照合番号B has :class:`CollationMismatch`); ``tries_left`` tries remain on the card's counter."""

    def __init__(self, tries_left: int, message: str | None = None):
        super().__init__(message or f"wrong PIN, {tries_left} tries left")
        self.tries_left = tries_left


class PinBlocked(CardError, PermissionError):
    """The PIN's retry counter is at zero: only the municipality can reset it (照合番号B: CollationBlocked)."""


class RefusalReason(enum.Enum):
    """Why the kiosk did not send a 照合番号B (screens may explain each; the patient's way on is the same)."""

    OCR_UNSURE = "ocr-unsure"  # the card-face reading was incomplete, inconsistent or not confident
    FAILED_HERE_BEFORE = "failed-here-before"  # this card already lost a try to this kiosk
    TOO_FEW_TRIES = "too-few-tries"  # the card's counter is below card.min_collation_tries_left
    LEDGER_UNAVAILABLE = "ledger-unavailable"  # the kiosk cannot know or record this card's history


class CollationRefused(CardError, ValueError):
    """The kiosk refused to spend a 照合番号B try (nothing was sent): offer PIN entry or staff.

    ``reason`` says why (a :class:`RefusalReason`); the subclasses below carry the other reasons so
    that screens, which map error classes to text, can tell them apart.
    """

    reason = RefusalReason.OCR_UNSURE


class CollationAlreadyFailed(CollationRefused):
    """This card already lost a 照合番号B try to this kiosk, so the kiosk will not try it again."""

    reason = RefusalReason.FAILED_HERE_BEFORE


class CollationTriesLow(CollationRefused):
    """The card's 照合番号B counter is below the configured minimum; the rest is kept for the holder."""

    reason = RefusalReason.TOO_FEW_TRIES

    def __init__(self, tries_left: int, message: str | None = None):
        super().__init__(message or f"only {tries_left} 照合番号B tries left")
        self.tries_left = tries_left


class CollationLedgerUnavailable(CollationRefused):
    """The per-card record of failed tries cannot be read or written: never try without it (fail closed)."""

    reason = RefusalReason.LEDGER_UNAVAILABLE


class CollationMismatch(CardError, PermissionError):
    """The card refused the 照合番号B the kiosk sent; ``tries_left`` remain on its counter (not the PIN's)."""

    def __init__(self, tries_left: int, message: str | None = None):
        super().__init__(message or f"照合番号B refused, {tries_left} tries left")
        self.tries_left = tries_left


class CollationBlocked(CardError, PermissionError):
    """The card's 照合番号B counter is at zero; the PIN is unaffected (only the municipality resets it)."""


__all__ += ["RefusalReason", "CollationAlreadyFailed", "CollationTriesLow", "CollationLedgerUnavailable",
            "CollationMismatch", "CollationBlocked"]


class FaceError(UketsukeError):
    """Base of errors from face verification."""


class ModelError(UketsukeError, OSError):
    """A model file (face or OCR) is missing, changed (sha256 mismatch) or cannot be loaded."""


class LinkError(UketsukeError, ConnectionError):
    """The MQTT link to the eligibility terminal failed."""


class MessageError(UketsukeError, ValueError):
    """A message on the link failed validation (broken JSON, wrong schema)."""


class OutboxError(LinkError, OSError):
    """The outbox database cannot be opened or written (read-only SD card, disk full, corrupt file)."""


class CommandRefused(UketsukeError, ValueError):
    """A terminal command the kiosk will not run now; its message (our words, never the sender's) is replied."""
