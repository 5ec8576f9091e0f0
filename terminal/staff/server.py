"""The staff page's HTTP server: uvicorn on its own ``staff-http`` thread, on a socket bound here.

Binding the socket ourselves (before the thread starts) turns "port in use" or "no such address"
into one clear error at start, and lets tests ask for port 0. uvicorn runs its event loop on the
thread (it installs no signal handlers off the main thread) and the page's routes on its worker
threads; none of them is paho's. A server that ends without :meth:`StaffServer.stop` is reported.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from hal.errors import UketsukeError

log = logging.getLogger(__name__)

START_WITHIN_S = 10.0


class StaffServerError(UketsukeError, OSError):
    """The staff page cannot listen (address in use, no such address); the message says which."""


class StaffServer:
    """Serves ``app`` on ``host:port`` (port 0: any free one; :attr:`url` says which)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0,
                 report: Callable[[str, BaseException | None], None] | None = None):
        self.app, self.host, self.port = app, host, port
        self.report = report
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise StaffServerError(f"the staff page cannot listen on {self.host}:{self.port}: {exc.strerror} "
                                   "(choose another --staff-port, or stop what uses it)") from None
        sock.listen(64)
        sock.set_inheritable(True)
        return sock

    def start(self) -> None:
        self._socket = self._bind()
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", http="h11",
                                ws="none", loop="asyncio", server_header=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="staff-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_WITHIN_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # uvicorn has no "started" event to wait on
        if not self._server.started:
            self.stop()
            raise StaffServerError(f"the staff page did not start on {self.host}:{self.port} (see the log)")
        log.info("staff page on %s", self.url)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit from uvicorn's startup too: report, never vanish
            error = exc
            log.exception("the staff page's server failed")
        if not self._stopping:
            log.error("the staff page's server stopped by itself")
            if self.report is not None:
                self.report("staff-http", error or StaffServerError("the staff page's server stopped"))

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
            if self._thread.is_alive():
                log.warning("the staff page's server did not stop within 5 s")
        if self._socket is not None:
            self._socket.close()
            self._socket = None
