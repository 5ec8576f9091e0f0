"""The PC/SC backend: one context per thread, and no pyscard exception leaves it.

One layer down is pyscard's ``smartcard.scard``; a fake of it records which thread made each
context and handle and fails any call that uses one from another thread.
"""

from __future__ import annotations

import itertools
import threading

import pytest
import smartcard.scard as real_scard

from hal.errors import CardRemoved, DeviceError, DeviceNotFound
from hal.nfc import pcsc


class FakeScard:
    """Enough of ``smartcard.scard`` for the backend, with thread ownership checks."""

    error = real_scard.error
    names = ("SCARD_S_SUCCESS", "SCARD_SCOPE_USER", "SCARD_E_TIMEOUT", "SCARD_E_NO_READERS_AVAILABLE",
             "SCARD_STATE_UNAWARE", "SCARD_STATE_PRESENT", "SCARD_STATE_MUTE", "SCARD_STATE_UNKNOWN",
             "SCARD_STATE_CHANGED", "SCARD_STATE_EMPTY", "SCARD_PROTOCOL_T0", "SCARD_PROTOCOL_T1",
             "SCARD_PCI_T0", "SCARD_PCI_T1", "SCARD_SHARE_SHARED", "SCARD_LEAVE_CARD", "SCARD_E_NO_SMARTCARD",
             "SCARD_W_REMOVED_CARD", "SCARD_W_UNRESPONSIVE_CARD", "SCARD_W_UNPOWERED_CARD",
             "SCARD_W_RESET_CARD", "SCARD_E_READER_UNAVAILABLE", "SCARD_E_NO_SERVICE",
             "SCARD_E_SERVICE_STOPPED", "SCARD_E_UNKNOWN_READER", "SCARD_E_INVALID_HANDLE",
             "SCARD_E_NOT_TRANSACTED")

    def __init__(self) -> None:
        for name in self.names:
            setattr(self, name, getattr(real_scard, name))
        self.ids = itertools.count(1000)
        self.context_owner: dict[int, threading.Thread] = {}
        self.handle_context: dict[int, int] = {}
        self.released: list[int] = []
        self.violations: list[str] = []
        self.raise_in: dict[str, Exception] = {}

    def _check(self, context: int, call: str) -> None:
        owner = self.context_owner.get(context)
        if owner is None:
            self.violations.append(f"{call} on unknown or released context {context}")
        elif owner is not threading.current_thread():
            self.violations.append(f"{call} from {threading.current_thread().name} on {owner.name}'s context")

    def _maybe_raise(self, call: str) -> None:
        if call in self.raise_in:
            raise self.raise_in[call]

    def SCardGetErrorMessage(self, code):  # noqa: N802 - pyscard's names
        return "fake"

    def SCardEstablishContext(self, scope):  # noqa: N802
        self._maybe_raise("SCardEstablishContext")
        context = next(self.ids)
        self.context_owner[context] = threading.current_thread()
        return self.SCARD_S_SUCCESS, context

    def SCardReleaseContext(self, context):  # noqa: N802
        self.released.append(context)
        self.context_owner.pop(context, None)
        return self.SCARD_S_SUCCESS

    def SCardListReaders(self, context, groups):  # noqa: N802
        self._check(context, "SCardListReaders")
        self._maybe_raise("SCardListReaders")
        return self.SCARD_S_SUCCESS, ["Fake Reader 00 00"]

    def SCardGetStatusChange(self, context, timeout_ms, states):  # noqa: N802
        self._check(context, "SCardGetStatusChange")
        self._maybe_raise("SCardGetStatusChange")
        return self.SCARD_S_SUCCESS, [(states[0][0], self.SCARD_STATE_PRESENT | self.SCARD_STATE_CHANGED, [])]

    def SCardConnect(self, context, name, share, protocols):  # noqa: N802
        self._check(context, "SCardConnect")
        handle = next(self.ids)
        self.handle_context[handle] = context
        return self.SCARD_S_SUCCESS, handle, self.SCARD_PROTOCOL_T1

    def SCardStatus(self, handle):  # noqa: N802
        self._check(self.handle_context[handle], "SCardStatus")
        return self.SCARD_S_SUCCESS, "Fake Reader 00 00", 0, self.SCARD_PROTOCOL_T1, [0x3B, 0x80, 0x80, 0x01, 0x01]

    def SCardTransmit(self, handle, pci, apdu):  # noqa: N802
        self._check(self.handle_context[handle], "SCardTransmit")
        self._maybe_raise("SCardTransmit")
        return self.SCARD_S_SUCCESS, [0x90, 0x00]

    def SCardDisconnect(self, handle, disposition):  # noqa: N802
        context = self.handle_context.pop(handle, None)
        if context in self.context_owner:
            self._check(context, "SCardDisconnect")
        return self.SCARD_S_SUCCESS


@pytest.fixture
def scard(monkeypatch):
    fake = FakeScard()
    monkeypatch.setattr(pcsc, "_scard", lambda: fake)
    return fake


def test_the_watcher_and_a_card_worker_each_use_their_own_context(scard):
    reader = pcsc.open_reader("")
    reader.poll_interval_s = 0.01
    done = threading.Event()
    results = []

    def worker(link):
        results.append(link.transmit(b"\x00\xa4\x04\x0c\x02\xa0\x00"))
        results.append(reader.is_card_present())
        done.set()

    reader.when_card_presented = lambda link: threading.Thread(target=worker, args=(link,), name="card-worker").start()
    reader.start()  # on the main thread: its own context
    reader.watch()
    try:
        assert done.wait(3)
    finally:
        reader.close()
    assert results == [(b"", 0x9000), True]
    assert scard.violations == []
    owners = {thread.name for thread in scard.context_owner.values()} | set()
    assert not owners  # close() released every context
    assert len(scard.released) >= 3  # main, watcher and worker each had one


def test_contexts_of_ended_threads_are_released(scard):
    reader = pcsc.open_reader("")
    for _ in range(3):
        thread = threading.Thread(target=reader.is_card_present)
        thread.start()
        thread.join()
    reader.is_card_present()
    assert len(reader._contexts) == 1 and scard.violations == []
    reader.close()


@pytest.mark.parametrize("call", ["SCardEstablishContext", "SCardListReaders", "SCardGetStatusChange",
                                  "SCardTransmit"])
def test_pyscard_exceptions_become_hal_errors(scard, call):
    reader = pcsc.open_reader("")
    link = None
    if call == "SCardTransmit":
        link = reader.wait_for_card(0)
    scard.raise_in[call] = real_scard.error("Failed to allocate memory")
    with pytest.raises((DeviceError, DeviceNotFound, CardRemoved)) as raised:
        if link is not None:
            link.transmit(b"\x00\xa4\x04\x0c\x02\xa0\x00")
        else:
            reader.wait_for_card(0)
    assert "pyscard failed in" in str(raised.value) or "fake" in str(raised.value)
    reader.close()
