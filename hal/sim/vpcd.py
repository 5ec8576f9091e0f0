"""Serve a virtual card to pcscd through vsmartcard's vpcd driver, so any PC/SC program can read it.

vpcd (``libifdvpcd.so``) makes pcscd show readers ``Virtual PCD 00 00`` / ``01`` that wait for a card
on TCP ports 35963 / 35964. A card is a TCP *client*: connecting inserts it, closing removes it. Each
message is a 2-byte big-endian length and a payload; a 1-byte payload is a control code (0 power
off, 1 power on, 2 reset, 4 get ATR → answer with the ATR), anything longer is a command APDU,
answered with the response APDU (data + SW). Debian's own ``vicc`` is broken on Python 3, hence this.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

from hal.errors import CardRemoved, DeviceNotFound

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or empty → (host, port) with vpcd's defaults."""
    text = (text or "").strip()
    host, separator, port = text.rpartition(":")
    if not separator:
        host, port = text, ""
    try:
        return host or DEFAULT_HOST, int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"vpcd address must be HOST:PORT (e.g. 127.0.0.1:35963), not {text!r}") from None


class VpcdCard:
    """A virtual card inserted into a vpcd reader for as long as it is connected.

    Args:
        card: anything with ``.atr``, ``.power_on()`` and ``.process(apdu) -> data + SW``.
        host, port: where pcscd's vpcd driver listens (port 35963 is reader ``Virtual PCD 00 00``).
    """

    def __init__(self, card, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.apdus_answered = 0
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pull_after: int | None = None
        self._lock = threading.Lock()
        self.inserted = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def insert(self, timeout_s: float = 5.0) -> VpcdCard:
        """Connect to vpcd (retrying while pcscd starts) and answer it on a daemon thread."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise DeviceNotFound(
                        f"no vpcd reader listening on {self.address} ({exc}); is pcscd running with the "
                        "vpcd driver (package vsmartcard-vpcd)?"
                    ) from exc
                time.sleep(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket = sock
        self._pull_after = None
        self.inserted.set()
        self._thread = threading.Thread(target=self._serve, args=(sock,), name=f"vpcd-card:{self.address}",
                                        daemon=True)
        self._thread.start()
        log.info("virtual card inserted into vpcd at %s", self.address)
        return self

    def remove(self) -> None:
        """Pull the card: close the connection (vpcd reports the card gone)."""
        with self._lock:
            sock, self._socket = self._socket, None
        self.inserted.clear()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
            self._thread = None

    close = remove

    def pull_after_commands(self, count: int) -> None:
        """Leave the reader when the next ``count`` APDUs are answered, before answering another."""
        self._pull_after = count

    def serve_forever(self) -> None:
        """Block until pcscd drops us or :meth:`remove` is called (for ``uketsuke card serve``)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> VpcdCard:
        return self.insert()

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _read_exactly(sock, 2)
                (length,) = struct.unpack(">H", header)
                payload = _read_exactly(sock, length)
                answer = self._answer(payload)
                if answer is None:
                    continue
                sock.sendall(struct.pack(">H", len(answer)) + answer)
        except CardRemoved:
            log.debug("vpcd connection closed")
        except OSError as exc:
            log.debug("vpcd connection ended: %s", exc)
        finally:
            self.inserted.clear()
            if self._socket is sock:
                threading.Thread(target=self.remove, daemon=True).start()

    def _answer(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            code = payload[0]
            if code in (POWER_ON, RESET):
                self.card.power_on()
            elif code == GET_ATR:
                return bytes(self.card.atr)
            elif code != POWER_OFF:
                log.debug("unknown vpcd control code %d", code)
            return None
        if self._pull_after is not None:
            if self._pull_after <= 0:
                log.debug("card leaves the vpcd reader before answering")
                raise CardRemoved("pulled")
            self._pull_after -= 1
        response = bytes(self.card.process(payload))
        self.apdus_answered += 1
        return response


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise CardRemoved("vpcd closed the connection")
        data += chunk
    return bytes(data)
