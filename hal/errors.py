"""The root of uketsuke's error hierarchy, and the errors a device backend may raise.

Every error the project raises derives from :class:`UketsukeError`, and each leaf also derives from
the builtin it resembles (as gpiozero's ``exc.py`` does), so callers can catch either. Vendor errors
(pyscard, nfcpy, picamera2, gpiozero) are translated into these at the backend boundary: nothing
above ``hal`` ever sees ``smartcard.*`` or ``nfc.*`` exceptions.
"""


class UketsukeError(Exception):
    """Base of every error raised by uketsuke."""


class HalError(UketsukeError):
    """Base of errors raised by device contracts and their backends."""


class BadBackend(HalError, ValueError):
    """A backend selection string names no known backend, or its arguments are malformed."""


class BackendUnavailable(HalError, ImportError):
    """The backend exists but a package it needs is not installed on this machine."""


class DeviceNotFound(HalError, OSError):
    """The selected device is not connected, not powered, or not accessible."""


class DeviceError(HalError, OSError):
    """The device answered, but not in a way the backend can use."""


class CardRemoved(HalError, ConnectionError):
    """The card (or phone) left the reader's field before the exchange completed."""


class LinkTimeout(HalError, TimeoutError):
    """The reader got no answer from the card in time (but the card may still be present)."""
