"""Card reader backend on PC/SC (pyscard): any contactless reader pcscd drives, and vpcd virtual cards.

Selection string ``pcsc[:<reader name>]``; an empty name takes the first reader, a name matches a
reader exactly or as a prefix (``pcsc:Virtual PCD 00 00``, ``pcsc:SONY FeliCa``). We use pyscard's
thin ``smartcard.scard`` layer, which returns PC/SC result codes, so that every failure maps to one
project error without guessing from message text, and keep one PC/SC context per reader object.

========================  =======  ==========================================================
reader                    support  remarks
========================  =======  ==========================================================
USB CCID contactless      yes      Type B cards appear as ISO 7816 cards with a synthesised ATR
vpcd (vsmartcard)         yes      ``Virtual PCD 00 00``; a virtual card is served by hal.sim.vpcd
card insertion/removal    yes      SCardGetStatusChange; the watcher thread in CardReader
extended-length APDUs     no       not announced: READ BINARY asks ≤ 256 bytes per command
========================  =======  ==========================================================

Errors: pcscd not running or no reader → :class:`DeviceNotFound` (with the fix); card pulled →
:class:`CardRemoved`; reader unplugged → :class:`DeviceNotFound`; no answer → :class:`LinkTimeout`.
"""

from __future__ import annotations

import logging
import threading
import time

from hal.contracts import CardLink, CardReader
from hal.errors import BackendUnavailable, CardRemoved, DeviceError, DeviceNotFound, LinkTimeout

log = logging.getLogger(__name__)

PCSCD_HINT = (
    "is pcscd running? (systemctl start pcscd.socket, or run 'pcscd -f' to see its log); "
    "is the reader plugged in and listed by 'pcsc_scan'?"
)


def _scard():
    try:
        import smartcard.scard as scard
    except ImportError as exc:
        raise BackendUnavailable(f"the pcsc card reader backend needs the Python package 'pyscard' ({exc})") from exc
    return scard


def open_reader(argument: str) -> PcscReader:
    """Registry factory: ``argument`` is a reader name (or a prefix of one); empty = the first reader."""
    return PcscReader(argument)


def _describe(scard, code: int) -> str:
    try:
        text = scard.SCardGetErrorMessage(code)
    except Exception:  # an unknown code must still produce a message
        text = "PC/SC error"
    return f"{text} (0x{code & 0xFFFFFFFF:08X})"


class PcscCardLink(CardLink):
    """A connected card handle; ``close`` leaves the card powered for the next reader."""

    REMOVED = ("SCARD_W_REMOVED_CARD", "SCARD_E_NO_SMARTCARD", "SCARD_W_UNPOWERED_CARD", "SCARD_W_RESET_CARD")
    READER_GONE = ("SCARD_E_READER_UNAVAILABLE", "SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED",
                   "SCARD_E_UNKNOWN_READER", "SCARD_E_INVALID_HANDLE")

    def __init__(self, reader: PcscReader, handle: int, protocol: int, atr: bytes) -> None:
        self._reader = reader
        self._handle = handle
        self._protocol = protocol
        self._atr = atr
        self._closed = False

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self._closed:
            raise CardRemoved("the card left the reader (link closed)")
        scard = _scard()
        code, response = scard.SCardTransmit(self._handle, self._protocol, list(apdu))
        if code != scard.SCARD_S_SUCCESS:
            self._raise_for(scard, code)
        if not response:
            # vpcd (and some CCID readers) report a card lost mid-command as an empty answer before
            # pcscd's next presence poll notices: a card always sends at least a status word.
            self.close()
            raise CardRemoved(f"the card on {self._reader.name!r} stopped answering (no status word)")
        if len(response) < 2:
            raise DeviceError(f"reader {self._reader.name!r} returned {len(response)} bytes, no status word")
        return bytes(response[:-2]), response[-2] << 8 | response[-1]

    def _raise_for(self, scard, code: int):
        names = {getattr(scard, name, None): name for name in self.REMOVED + self.READER_GONE}
        name = names.get(code)
        if name in self.REMOVED:
            self.close()
            raise CardRemoved(f"the card left reader {self._reader.name!r}: {_describe(scard, code)}")
        if name in self.READER_GONE:
            self.close()
            raise DeviceNotFound(f"reader {self._reader.name!r} is gone: {_describe(scard, code)}; {PCSCD_HINT}")
        if code in (getattr(scard, "SCARD_E_TIMEOUT", None), getattr(scard, "SCARD_W_UNRESPONSIVE_CARD", None)):
            raise LinkTimeout(f"the card on {self._reader.name!r} did not answer: {_describe(scard, code)}")
        if not self._reader.is_card_present():
            self.close()
            raise CardRemoved(f"the card left reader {self._reader.name!r}: {_describe(scard, code)}")
        raise DeviceError(f"reader {self._reader.name!r} failed to transmit: {_describe(scard, code)}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        scard = _scard()
        scard.SCardDisconnect(self._handle, scard.SCARD_LEAVE_CARD)
        self._reader._forget(self)


class PcscReader(CardReader):
    """One PC/SC reader, chosen by name (or the first one)."""

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.wanted = name.strip()
        self.name = ""
        self._context: int | None = None
        self._link: PcscCardLink | None = None
        self._lock = threading.RLock()

    def describe(self) -> str:
        return f"PC/SC reader {self.name or self.wanted or '(first)'}"

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        with self._lock:
            if self._context is not None:
                return
            scard = _scard()
            code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if code != scard.SCARD_S_SUCCESS:
                raise DeviceNotFound(f"cannot reach the PC/SC service: {_describe(scard, code)}; {PCSCD_HINT}")
            self._context = context
            try:
                self.name = self._choose_reader(scard)
            except Exception:
                self.close()
                raise
            log.info("using %s", self.describe())

    def readers(self) -> list[str]:
        """Names of the readers pcscd knows now."""
        scard = _scard()
        self.start()
        code, names = scard.SCardListReaders(self._context, [])
        if code == getattr(scard, "SCARD_E_NO_READERS_AVAILABLE", None):
            return []
        if code != scard.SCARD_S_SUCCESS:
            raise DeviceNotFound(f"cannot list PC/SC readers: {_describe(scard, code)}; {PCSCD_HINT}")
        return list(names)

    def _choose_reader(self, scard) -> str:
        code, names = scard.SCardListReaders(self._context, [])
        if code not in (scard.SCARD_S_SUCCESS, getattr(scard, "SCARD_E_NO_READERS_AVAILABLE", None)):
            raise DeviceNotFound(f"cannot list PC/SC readers: {_describe(scard, code)}; {PCSCD_HINT}")
        names = list(names) if code == scard.SCARD_S_SUCCESS else []
        if not names:
            raise DeviceNotFound(f"no PC/SC reader found; {PCSCD_HINT}")
        if not self.wanted:
            return names[0]
        for candidate in names:
            if candidate == self.wanted:
                return candidate
        for candidate in names:
            if candidate.startswith(self.wanted):
                return candidate
        raise DeviceNotFound(
            f"no PC/SC reader named {self.wanted!r}; readers present: {', '.join(repr(n) for n in names)}"
        )

    def close(self) -> None:
        super().close()
        with self._lock:
            if self._link is not None:
                self._link.close()
            if self._context is not None:
                _scard().SCardReleaseContext(self._context)
                self._context = None

    def _forget(self, link: PcscCardLink) -> None:
        with self._lock:
            if self._link is link:
                self._link = None

    # ------------------------------------------------------------------ cards

    def _reader_state(self, timeout_ms: int, known_state: int) -> int:
        scard = _scard()
        code, states = scard.SCardGetStatusChange(self._context, timeout_ms, [(self.name, known_state)])
        if code == scard.SCARD_E_TIMEOUT:
            return known_state
        if code != scard.SCARD_S_SUCCESS:
            raise DeviceNotFound(f"reader {self.name!r} is gone: {_describe(scard, code)}; {PCSCD_HINT}")
        return states[0][1]

    def is_card_present(self) -> bool:
        self.start()
        scard = _scard()
        state = self._reader_state(0, scard.SCARD_STATE_UNAWARE)
        if state & scard.SCARD_STATE_UNKNOWN:
            raise DeviceNotFound(f"reader {self.name!r} is gone; {PCSCD_HINT}")
        return bool(state & scard.SCARD_STATE_PRESENT) and not state & scard.SCARD_STATE_MUTE

    def wait_for_card(self, timeout_s: float) -> PcscCardLink | None:
        self.start()
        scard = _scard()
        with self._lock:
            if self._link is not None:
                return self._link
        deadline = time.monotonic() + max(timeout_s, 0.0)
        state = scard.SCARD_STATE_UNAWARE
        while True:
            state = self._reader_state(int(max(0.0, deadline - time.monotonic()) * 1000), state)
            if state & scard.SCARD_STATE_PRESENT and not state & scard.SCARD_STATE_MUTE:
                link = self._connect(scard)
                if link is not None:
                    return link
            if time.monotonic() >= deadline:
                return None
            state &= ~scard.SCARD_STATE_CHANGED

    def _connect(self, scard) -> PcscCardLink | None:
        protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        code, handle, protocol = scard.SCardConnect(self._context, self.name, scard.SCARD_SHARE_SHARED, protocols)
        if code in (scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_REMOVED_CARD, scard.SCARD_W_UNRESPONSIVE_CARD):
            return None  # gone again between the event and the connect
        if code != scard.SCARD_S_SUCCESS:
            raise DeviceError(f"cannot connect to the card on {self.name!r}: {_describe(scard, code)}")
        code, _reader, _state, _protocol, atr = scard.SCardStatus(handle)
        if code != scard.SCARD_S_SUCCESS:
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
            return None
        pci = scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        link = PcscCardLink(self, handle, pci, bytes(atr))
        with self._lock:
            self._link = link
        log.debug("card on %s, ATR %s", self.name, bytes(atr).hex())
        return link
