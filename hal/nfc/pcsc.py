"""Card reader backend on PC/SC (pyscard): any contactless reader pcscd drives, and vpcd virtual cards.

Selection string ``pcsc[:<reader name>]``; an empty name takes the first reader, a name matches a
reader exactly or as a prefix (``pcsc:Virtual PCD 00 00``, ``pcsc:SONY FeliCa``). We use pyscard's
thin ``smartcard.scard`` layer, which returns PC/SC result codes, so that every failure maps to one
project error without guessing from message text.

Threads: PC/SC lets each thread use only its own context (pcsc-lite serialises calls on one
context, so a watcher blocked in SCardGetStatusChange would also stall the card worker's
SCardTransmit, and the standard leaves sharing undefined). The reader therefore keeps **one context
per calling thread** (:class:`_ThreadContexts`): the watcher thread waits and polls on its own, and
a card link connects its own handle in each thread that transmits (a shared-mode SCardConnect from
that thread's context), so no context or handle is used from a thread other than the one that made
it. Contexts of threads that have ended are released on the next call; the rest by ``close()``,
after the watcher has stopped (the only cross-thread call, made when their owners are done).

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
pyscard's own exception (``smartcard.scard.error``, raised by its wrappers instead of a result code)
→ :class:`DeviceError`; nothing from pyscard leaves this module.
"""

from __future__ import annotations

import logging
import threading
import time

from hal.contracts import CardLink, CardReader
from hal.errors import BackendUnavailable, CardRemoved, DeviceError, DeviceNotFound, HalError, LinkTimeout

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


def _call(scard, what: str, function, *args):
    """Call a pyscard function, turning pyscard's own exception into a HalError."""
    try:
        return function(*args)
    except scard.error as exc:
        raise DeviceError(f"pyscard failed in {what}: {exc}; {PCSCD_HINT}") from exc


class _ThreadContexts:
    """One PC/SC context per thread that uses the reader (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[threading.Thread, int] = {}

    def get(self, scard) -> int:
        """The calling thread's context, established on first use."""
        me = threading.current_thread()
        with self._lock:
            context = self._by_thread.get(me)
            ended = [thread for thread in self._by_thread if not thread.is_alive()]
            stale = [self._by_thread.pop(thread) for thread in ended]
        for old in stale:  # their threads are gone, so nobody else can be using them
            _call(scard, "SCardReleaseContext", scard.SCardReleaseContext, old)
        if context is not None:
            return context
        code, context = _call(scard, "SCardEstablishContext", scard.SCardEstablishContext, scard.SCARD_SCOPE_USER)
        if code != scard.SCARD_S_SUCCESS:
            raise DeviceNotFound(f"cannot reach the PC/SC service: {_describe(scard, code)}; {PCSCD_HINT}")
        with self._lock:
            self._by_thread[me] = context
        return context

    def mine(self) -> int | None:
        with self._lock:
            return self._by_thread.get(threading.current_thread())

    def drop_mine(self, scard) -> None:
        """Release the calling thread's context (pcscd restarted, reader lost): the next call makes a new one."""
        with self._lock:
            context = self._by_thread.pop(threading.current_thread(), None)
        if context is not None:
            try:
                _call(scard, "SCardReleaseContext", scard.SCardReleaseContext, context)
            except DeviceError as exc:
                log.debug("releasing a PC/SC context: %s", exc)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_thread)

    def release_all(self, scard) -> None:
        """Release every context; only once no other thread uses the reader (``close``)."""
        with self._lock:
            contexts = list(self._by_thread.values())
            self._by_thread.clear()
        for context in contexts:
            try:
                _call(scard, "SCardReleaseContext", scard.SCardReleaseContext, context)
            except DeviceError as exc:  # releasing after pcscd died must not mask the real error
                log.debug("releasing a PC/SC context: %s", exc)


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
        #: thread → (handle, protocol): each thread transmits through a handle of its own context.
        self._handles: dict[threading.Thread, tuple[int, int]] = {threading.current_thread(): (handle, protocol)}
        self._handles_lock = threading.Lock()
        self._atr = atr
        self._closed = False

    @property
    def atr(self) -> bytes:
        return self._atr

    def _my_handle(self, scard) -> tuple[int, int]:
        me = threading.current_thread()
        with self._handles_lock:
            mine = self._handles.get(me)
        if mine is not None:
            return mine
        # First APDU from this thread: connect again, from this thread's own context (shared mode,
        # so the card stays where it is and the watcher's handle keeps working).
        context = self._reader._contexts.get(scard)
        protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        code, handle, protocol = _call(scard, "SCardConnect", scard.SCardConnect, context, self._reader.name,
                                       scard.SCARD_SHARE_SHARED, protocols)
        if code != scard.SCARD_S_SUCCESS:
            self._raise_for(scard, code)
        pci = scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        with self._handles_lock:
            self._handles[me] = (handle, pci)
        return handle, pci

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self._closed:
            self._disconnect_mine()
            raise CardRemoved("the card left the reader (link closed)")
        scard = _scard()
        handle, protocol = self._my_handle(scard)
        code, response = _call(scard, "SCardTransmit", scard.SCardTransmit, handle, protocol, list(apdu))
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
        try:
            present = self._reader.is_card_present()
        except HalError:
            present = False
        if not present:
            self.close()
            raise CardRemoved(f"the card left reader {self._reader.name!r}: {_describe(scard, code)}")
        raise DeviceError(f"reader {self._reader.name!r} failed to transmit: {_describe(scard, code)}")

    def _disconnect_mine(self) -> None:
        with self._handles_lock:
            mine = self._handles.pop(threading.current_thread(), None)
        if mine is None:
            return
        scard = _scard()
        try:
            _call(scard, "SCardDisconnect", scard.SCardDisconnect, mine[0], scard.SCARD_LEAVE_CARD)
        except DeviceError as exc:  # disconnecting from a dead pcscd: nothing left to free
            log.debug("disconnecting: %s", exc)

    def close(self) -> None:
        """Drop the link. Only this thread's handle is disconnected here: the others belong to other
        threads' contexts and go when those threads next transmit, end, or the reader closes."""
        self._disconnect_mine()
        if self._closed:
            return
        self._closed = True
        self._reader._forget(self)


class PcscReader(CardReader):
    """One PC/SC reader, chosen by name (or the first one)."""

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.wanted = name.strip()
        self.name = ""
        self._contexts = _ThreadContexts()
        self._link: PcscCardLink | None = None
        self._lock = threading.RLock()

    def describe(self) -> str:
        return f"PC/SC reader {self.name or self.wanted or '(first)'}"

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Reach pcscd from the calling thread and choose the reader (again, after it was lost)."""
        with self._lock:
            if self.name and self._contexts.mine() is not None:
                return
            scard = _scard()
            context = self._contexts.get(scard)
            try:
                self.name = self._choose_reader(scard, context)
            except HalError:
                self._contexts.drop_mine(scard)
                raise
            log.info("using %s", self.describe())

    @property
    def _context(self) -> int:
        """The calling thread's context (established, and the reader chosen, on first use)."""
        scard = _scard()
        if not self.name:
            self.start()
        return self._contexts.get(scard)

    def readers(self) -> list[str]:
        """Names of the readers pcscd knows now."""
        scard = _scard()
        code, names = _call(scard, "SCardListReaders", scard.SCardListReaders, self._context, [])
        if code == getattr(scard, "SCARD_E_NO_READERS_AVAILABLE", None):
            return []
        if code != scard.SCARD_S_SUCCESS:
            raise DeviceNotFound(f"cannot list PC/SC readers: {_describe(scard, code)}; {PCSCD_HINT}")
        return list(names)

    def _choose_reader(self, scard, context: int) -> str:
        code, names = _call(scard, "SCardListReaders", scard.SCardListReaders, context, [])
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
            # The watcher has stopped (super().close() joined it): every context is idle now.
            self._contexts.release_all(_scard())

    def _forget(self, link: PcscCardLink) -> None:
        with self._lock:
            if self._link is link:
                self._link = None

    # ------------------------------------------------------------------ cards

    def _reader_state(self, timeout_ms: int, known_state: int) -> int:
        scard = _scard()
        code, states = _call(scard, "SCardGetStatusChange", scard.SCardGetStatusChange, self._context, timeout_ms,
                             [(self.name, known_state)])
        if code == scard.SCARD_E_TIMEOUT:
            return known_state
        if code != scard.SCARD_S_SUCCESS:
            self._contexts.drop_mine(scard)  # pcscd restarted or reader unplugged: start() afresh
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
        code, handle, protocol = _call(scard, "SCardConnect", scard.SCardConnect, self._context, self.name,
                                       scard.SCARD_SHARE_SHARED, protocols)
        if code in (scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_REMOVED_CARD, scard.SCARD_W_UNRESPONSIVE_CARD):
            return None  # gone again between the event and the connect
        if code != scard.SCARD_S_SUCCESS:
            raise DeviceError(f"cannot connect to the card on {self.name!r}: {_describe(scard, code)}")
        code, _reader, _state, _protocol, atr = _call(scard, "SCardStatus", scard.SCardStatus, handle)
        if code != scard.SCARD_S_SUCCESS:
            _call(scard, "SCardDisconnect", scard.SCardDisconnect, handle, scard.SCARD_LEAVE_CARD)
            return None
        pci = scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        link = PcscCardLink(self, handle, pci, bytes(atr))
        with self._lock:
            self._link = link
        log.debug("card on %s, ATR %s", self.name, bytes(atr).hex())
        return link
