"""Device contracts: what the firmware may ask of each piece of hardware.

One small abstract class per device. ``firmware/`` codes against these only; the backends in
``hal/<device>/`` implement them for real hardware (pyscard, nfcpy, picamera2, OpenCV, gpiozero)
and for simulation (``sim``), and are chosen by one selection string (see :mod:`hal.registry`).

Backends *must* implement every abstract method. They *may* override the optional hooks
(``start``/``close``, ``describe``). Everything a backend raises is a :class:`hal.errors.HalError`.
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hal.errors import DeviceError, HalError

log = logging.getLogger(__name__)


class Device(abc.ABC):
    """Common life cycle of every device: ``start`` before use, ``close`` when done (idempotent)."""

    #: The selection string the device was opened with, e.g. ``"pcsc:Virtual PCD 00 00"``.
    spec: str = ""

    def start(self) -> None:
        """Acquire the hardware. The default does nothing."""

    def close(self) -> None:
        """Release the hardware. Must be safe to call twice. The default does nothing."""

    def describe(self) -> str:
        """One line for logs and ``uketsuke selftest``: which backend, which device."""
        return self.spec or type(self).__name__

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --------------------------------------------------------------------------- card reader


class CardLink(abc.ABC):
    """An open channel to one card (or phone) in the field.

    The firmware's card layer builds every APDU; a link only moves bytes, like nfcpy's transport.
    """

    @abc.abstractmethod
    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU and return the response.

        Args:
            apdu: a complete ISO 7816-4 command APDU (short or extended).

        Returns:
            ``(data, sw)``: the response data without the status word, and the status word as an
            int (``0x9000`` on success). ``61xx``/``6Cxx`` are returned as they are: the card layer
            handles them, so that the same logic runs over every reader.

        Raises:
            CardRemoved: the card left the field; the link is dead afterwards.
            LinkTimeout: the card did not answer in time.
        """

    @property
    @abc.abstractmethod
    def atr(self) -> bytes:
        """The (possibly synthesised) answer to reset. Never use it to identify the card."""

    @property
    def max_response_bytes(self) -> int:
        """Largest response data one READ BINARY should ask for on this link.

        PN532 links return 251 (avoids ISO-DEP chaining with 256-byte frames); PC/SC links 256.
        """
        return 256

    @property
    def supports_extended_apdu(self) -> bool:
        """True where the reader passes extended-length APDUs through."""
        return False

    def close(self) -> None:
        """Drop the channel (the card stays in the field). Safe to call twice."""


CardHandler = Callable[[CardLink], None]
RemovalHandler = Callable[[], None]


class CardReader(Device):
    """A contactless reader that reports cards arriving and leaving.

    Backends implement :meth:`wait_for_card` and :meth:`is_card_present`; the base class turns them
    into ``when_card_presented`` / ``when_card_removed`` callbacks on a watcher thread (gpiozero
    style), so the flow only ever receives events.
    """

    poll_interval_s: float = 0.1
    #: How often the watcher retries a reader that is gone (unplugged, pcscd stopped).
    retry_interval_s: float = 2.0
    #: A backend's DeviceError (a bad frame) this many times in a row before the reader counts as lost.
    glitches_before_lost: int = 3

    def __init__(self) -> None:
        self.when_card_presented: CardHandler | None = None
        self.when_card_removed: RemovalHandler | None = None
        #: Called with the HalError when the reader itself is lost, and with None when it is back.
        self.when_reader_changed: Callable[[HalError | None], None] | None = None
        #: Called with the exception when one of the listeners above raised (the watcher goes on).
        self.when_listener_failed: Callable[[Exception], None] | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    @abc.abstractmethod
    def wait_for_card(self, timeout_s: float) -> CardLink | None:
        """Block until a card is in the field, then connect to it.

        Args:
            timeout_s: how long to wait; 0 polls once.

        Returns:
            A connected :class:`CardLink`, or None if no card arrived in time.

        Raises:
            DeviceNotFound: the reader itself is gone.
        """

    @abc.abstractmethod
    def is_card_present(self) -> bool:
        """True while a card is in the field (cheap; polled by the watcher)."""

    def watch(self) -> None:
        """Start delivering card events to the ``when_*`` callbacks on a daemon thread."""
        if self._watcher is not None:
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch_loop, name=f"watch:{self.spec}", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        """Stop the watcher thread. A no-op from the watcher itself (a backend's ``start`` that
        cleans up with ``close`` on failure must not end the retries that will bring it back)."""
        if self._watcher is threading.current_thread():
            return
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def _watch_loop(self) -> None:
        """Poll for cards until stopped. Nothing a backend or a listener raises ends this thread.

        A HalError means the reader is gone (a plain :class:`DeviceError` — one bad frame — only
        after ``glitches_before_lost`` in a row): ``when_reader_changed(error)`` once, then a retry of
        ``start()`` every ``retry_interval_s`` until it is back (``when_reader_changed(None)``). Any
        other exception from the backend is a backend bug that must not look like "no card": it is
        logged with its traceback and handled as a lost reader (wrapped in :class:`DeviceError`), so
        the kiosk goes out of service and staff hear of it. An exception in a ``when_*`` listener is
        logged and handed to ``when_listener_failed``; the watcher goes on.
        """
        lost: HalError | None = None
        glitches = 0
        try:
            while not self._stop.is_set():
                try:
                    if lost is not None:
                        self.start()
                    link = self.wait_for_card(self.poll_interval_s)
                except Exception as exc:
                    if not isinstance(exc, HalError):
                        log.exception("reader backend %s raised a non-HAL error", self.spec)
                        exc = DeviceError(f"the reader backend failed unexpectedly ({type(exc).__name__})")
                    elif type(exc) is DeviceError and lost is None and glitches < self.glitches_before_lost:
                        # One bad frame is not a lost reader: retry quietly a few times first, so a
                        # glitch does not flicker the kiosk out of service and back.
                        glitches += 1
                        log.warning("reader %s: %s (glitch %d)", self.spec, exc, glitches)
                        self._stop.wait(self.poll_interval_s)
                        continue
                    if lost is None:
                        self._call_listener(self.when_reader_changed, exc)
                    lost = exc
                    self._stop.wait(self.retry_interval_s)
                    continue
                glitches = 0
                if lost is not None:
                    lost = None
                    self._call_listener(self.when_reader_changed, None)
                if link is None:
                    continue
                self._call_listener(self.when_card_presented, link)
                while not self._stop.is_set() and self._card_still_present():
                    self._stop.wait(self.poll_interval_s)
                try:
                    link.close()
                except Exception:
                    log.exception("closing the card link failed")
                if not self._stop.is_set():
                    self._call_listener(self.when_card_removed)
        finally:
            if not self._stop.is_set():  # only a BaseException gets here: say so before the thread ends
                log.critical("the card watcher of %s stopped unexpectedly", self.spec)
                self._call_listener(self.when_reader_changed, DeviceError("the card watcher stopped unexpectedly"))

    def _call_listener(self, listener, *args) -> None:
        if listener is None:
            return
        try:
            listener(*args)
        except Exception as exc:
            log.exception("a card reader listener failed")
            if self.when_listener_failed is not None and listener is not self.when_listener_failed:
                try:
                    self.when_listener_failed(exc)
                except Exception:
                    log.exception("when_listener_failed failed too")

    def _card_still_present(self) -> bool:
        try:
            return self.is_card_present()
        except Exception as exc:  # a reader lost with a card on it: the card is gone too
            if not isinstance(exc, HalError):
                log.exception("reader backend %s raised a non-HAL error while polling", self.spec)
            return False

    def close(self) -> None:
        self.stop_watching()


# --------------------------------------------------------------------------- cameras


class Camera(Device):
    """A camera giving RGB frames: the face camera, or the card camera above the tray."""

    @abc.abstractmethod
    def capture(self) -> np.ndarray:
        """Return the next frame as an ``(H, W, 3)`` uint8 RGB array that the caller owns.

        The caller zeroes it when done (frames carry faces); backends keep no other copy.

        Raises:
            DeviceNotFound: the camera is gone.
            DeviceError: no frame could be had.
        """

    def set_light(self, level: int) -> None:
        """Change the illumination (card camera: a second lighting moves glare). Optional."""

    def frame_time_s(self) -> float:
        """When the last frame was taken, in seconds on the camera's own clock (liveness measures a
        blink's duration with it). The default is the host's monotonic clock now, right after
        :meth:`capture`; a backend with sensor timestamps (picamera2) or a simulated clock overrides it."""
        import time

        return time.monotonic()


# --------------------------------------------------------------------------- indicators


class StatusColour(enum.Enum):
    """What the RGB status LED says, independent of how a backend shows it."""

    OFF = (0.0, 0.0, 0.0)
    IDLE = (0.0, 0.0, 0.3)  # dim blue: waiting for a card
    BUSY = (0.0, 0.0, 1.0)  # blue: reading / matching
    ATTENTION = (1.0, 0.6, 0.0)  # amber: the patient must act
    OK = (0.0, 1.0, 0.0)  # green: done
    ERROR = (1.0, 0.0, 0.0)  # red: failed, see screen


class BeepPattern(enum.Enum):
    """Buzzer patterns as (on_s, off_s, repeats)."""

    TAP = (0.05, 0.0, 1)  # card detected
    OK = (0.1, 0.05, 2)
    ERROR = (0.4, 0.1, 3)
    ATTENTION = (0.2, 0.2, 2)


class Indicators(Device):
    """RGB status LED and buzzer."""

    @abc.abstractmethod
    def set_status(self, colour: StatusColour, blink: bool = False) -> None:
        """Show ``colour`` on the status LED (blinking if asked)."""

    @abc.abstractmethod
    def beep(self, pattern: BeepPattern) -> None:
        """Sound ``pattern`` on the buzzer without blocking the caller."""


# --------------------------------------------------------------------------- speaker


@dataclass(frozen=True)
class Utterance:
    """A sentence to speak: the text and the language it is in (``ja``, ``en``, …)."""

    text: str
    language: str = "ja"


class Speaker(Device):
    """Voice guidance and sounds."""

    @abc.abstractmethod
    def play(self, clip: str) -> None:
        """Play a named sound clip (e.g. ``"chime"``) without blocking."""

    @abc.abstractmethod
    def say(self, utterance: Utterance) -> None:
        """Speak a sentence without blocking; a newer sentence interrupts an older one."""
