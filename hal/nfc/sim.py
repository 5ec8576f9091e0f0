"""``sim`` card reader: a virtual My Number card in the same process, with a driving API.

Selection string ``sim:<profile dir>`` starts with that card in the field; plain ``sim`` starts
empty. Tests and the desktop kiosk drive it like a hand at the reader::

    reader = open_reader("cards/alice")
    link = reader.wait_for_card(0)
    reader.remove()                 # next transmit raises CardRemoved
    reader.present("cards/bob")     # a new tap: the card powers on, security state cleared
    reader.remove_after(3)          # the card leaves the field after 3 more commands (mid-read)
    reader.history                  # [(apdu, sw), ...] with PIN bytes masked

=====================  ===============================================
feature                support
=====================  ===============================================
short / extended APDU  yes / yes (``supports_extended_apdu``)
max response per READ  256 (``max_response_bytes``, settable to 251)
card removal           :meth:`SimCardReader.remove`, :meth:`remove_after`
presence events        via the contract's watcher thread
=====================  ===============================================
"""

from __future__ import annotations

import logging
import os
import threading
import time

from hal.contracts import CardLink, CardReader
from hal.errors import BadBackend, CardRemoved
from hal.sim.card import VirtualCard

log = logging.getLogger(__name__)


def mask_secret(apdu: bytes) -> bytes:
    """The APDU with VERIFY's data (PIN / 照合番号B) replaced by ``*`` bytes, for logs and history."""
    if len(apdu) > 5 and apdu[1] == 0x20:
        return apdu[:5] + b"*" * (len(apdu) - 5)
    return apdu


class SimCardLink(CardLink):
    """The channel to the virtual card of one presentation; dead once that card leaves."""

    def __init__(self, reader: SimCardReader, session: int, card: VirtualCard):
        self._reader = reader
        self._session = session
        self._card = card

    @property
    def atr(self) -> bytes:
        return self._card.atr

    @property
    def max_response_bytes(self) -> int:
        return self._reader.max_response_bytes

    @property
    def supports_extended_apdu(self) -> bool:
        return self._reader.supports_extended_apdu

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        return self._reader._transmit(self._session, bytes(apdu))

    def __repr__(self) -> str:
        return f"SimCardLink({self._card!r}, session={self._session})"


class SimCardReader(CardReader):
    """An in-process reader holding at most one :class:`VirtualCard` in its field."""

    poll_interval_s = 0.02

    def __init__(self, profile_dir: str | os.PathLike | None = None, *, max_response_bytes: int = 256,
                 supports_extended_apdu: bool = True):
        super().__init__()
        self.max_response_bytes = max_response_bytes
        self.supports_extended_apdu = supports_extended_apdu
        self.history: list[tuple[bytes, int]] = []
        self._cond = threading.Condition()
        self._card: VirtualCard | None = None
        self._session = 0
        self._remove_after: int | None = None
        if profile_dir:
            self.present(profile_dir)

    # ------------------------------------------------------------------ driving API

    def present(self, card: VirtualCard | str | os.PathLike) -> VirtualCard:
        """Put a card (or the profile directory of one) in the field: it powers on afresh."""
        if not isinstance(card, VirtualCard):
            card = VirtualCard(card)
        with self._cond:
            card.power_on()
            self._card = card
            self._session += 1
            self._remove_after = None
            self._cond.notify_all()
        log.debug("presented %r", card)
        return card

    def remove(self) -> None:
        """Take the card out of the field: the link dies, the card loses its security state."""
        with self._cond:
            self._card = None
            self._session += 1
            self._remove_after = None
            self._cond.notify_all()

    def remove_after(self, commands: int) -> None:
        """Let ``commands`` more APDUs through, then remove the card before the next one."""
        with self._cond:
            self._remove_after = commands

    @property
    def card(self) -> VirtualCard | None:
        return self._card

    # ------------------------------------------------------------------ CardReader contract

    def wait_for_card(self, timeout_s: float) -> CardLink | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._card is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return SimCardLink(self, self._session, self._card)

    def is_card_present(self) -> bool:
        return self._card is not None

    def describe(self) -> str:
        card = self._card
        return f"sim reader ({card.profile_dir if card else 'no card'})"

    # ------------------------------------------------------------------ internals

    def _transmit(self, session: int, apdu: bytes) -> tuple[bytes, int]:
        with self._cond:
            if self._remove_after is not None:
                if self._remove_after <= 0:
                    self._card = None
                    self._session += 1
                    self._remove_after = None
                    self._cond.notify_all()
                else:
                    self._remove_after -= 1
            card = self._card
            if card is None or session != self._session:
                raise CardRemoved("the card left the sim reader's field")
            response = card.process(apdu)
        sw = int.from_bytes(response[-2:], "big")
        self.history.append((mask_secret(apdu), sw))
        return response[:-2], sw


def open_reader(argument: str) -> SimCardReader:
    """Factory for ``sim[:<profile dir>]``."""
    if argument and not os.path.isdir(argument):
        raise BadBackend(f"sim reader: {argument!r} is not a virtual card profile directory "
                         "(make one with `uketsuke card make-profile DIR`)")
    return SimCardReader(argument or None)
