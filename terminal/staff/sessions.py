"""Staff sessions: kept by the server, named by a signed cookie, each with its own CSRF token.

The cookie holds only a random session id signed with itsdangerous (a key made at start, so a
restart logs everybody out). The session itself — user, CSRF token, age — stays in memory here:
logging out ends it on the server, so a copied cookie is worth nothing afterwards. Sessions end
after :attr:`Sessions.max_age_s` whatever happens, and after :attr:`Sessions.idle_s` without a
request. Every form on the page carries the session's CSRF token; a POST without it is refused.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "uketsuke_staff"


@dataclass
class Session:
    id: str
    user: str
    csrf: str
    started: float
    seen: float
    #: One line for the next page view (what a button did), then cleared.
    notice: str | None = None

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class Sessions:
    """At most ``keep`` live sessions (a new login beyond that ends the oldest)."""

    def __init__(self, *, max_age_s: float = 12 * 3600, idle_s: float = 2 * 3600, keep: int = 100,
                 clock: Callable[[], float] = time.monotonic, secret: bytes | None = None):
        self.max_age_s, self.idle_s, self.keep, self.clock = max_age_s, idle_s, keep, clock
        self._signer = URLSafeSerializer(secret or secrets.token_bytes(32), salt="uketsuke-staff-session")
        self._live: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()  # requests run on the server's worker threads

    def open(self, user: str) -> tuple[str, Session]:
        """A new session for ``user``: (cookie value, session)."""
        now = self.clock()
        session = Session(secrets.token_urlsafe(24), user, secrets.token_urlsafe(24), now, now)
        with self._lock:
            self._live[session.id] = session
            while len(self._live) > self.keep:
                self._live.popitem(last=False)
        return self._signer.dumps(session.id), session

    def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie names (and it is touched), or None: unsigned, ended or expired."""
        if not cookie:
            return None
        try:
            session_id = self._signer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(session_id, str):
            return None
        now = self.clock()
        with self._lock:
            session = self._live.get(session_id)
            if session is None:
                return None
            if now - session.started > self.max_age_s or now - session.seen > self.idle_s:
                del self._live[session_id]
                return None
            session.seen = now
            return session

    def close(self, session: Session) -> None:
        with self._lock:
            self._live.pop(session.id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)
