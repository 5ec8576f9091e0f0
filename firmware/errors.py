"""Errors raised by the firmware layer; the hierarchy's root lives in :mod:`hal.errors`.

The flow turns each class into a screen (``ui/`` maps classes to translated text), so a class here
is a user-visible situation, and its message is for logs and technicians, never for the screen.
"""

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
    """The PIN (or 照合番号B) was wrong; ``tries_left`` tries remain on the card's counter."""

    def __init__(self, tries_left: int, message: str | None = None):
        super().__init__(message or f"wrong PIN, {tries_left} tries left")
        self.tries_left = tries_left


class PinBlocked(CardError, PermissionError):
    """The PIN's retry counter is at zero: only the municipality can reset it."""


class CollationRefused(CardError, ValueError):
    """The kiosk refused to spend a 照合番号B try: the OCR was unsure or too few tries remain."""


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
