"""Durable outbox: a result is written to SQLite (WAL, synchronous=FULL) before it is published and
deleted only when the *terminal* acknowledges it (an ``ack`` with its id), so a broker restart, a
terminal that is offline, a network drop or a power cut loses nothing; unacknowledged rows are sent
again (the result ``id`` makes duplicates harmless at the terminal).

Only the link's sender thread writes here. A database that cannot be opened or written raises
:class:`OutboxError` (the sender keeps the result in memory and reports it); a corrupt file is moved
aside as ``outbox.sqlite3.corrupt-<time>`` (recoverable by hand with the sqlite3 shell) and a fresh
one is started. A result the broker refuses for good is *parked*: kept, reported, not resent.

The database holds result payloads only: certificates and consent, never a face, PIN or My Number.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import OutboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    id: str
    topic: str
    payload: bytes
    created: float
    attempts: int


class Outbox:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._memory = str(path) == ":memory:"
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        #: Where a corrupt database was moved at start (for the staff problem line), or None.
        self.moved_aside: Path | None = None
        #: Why the database could not be opened at start, or None.
        self.open_error: OutboxError | None = None
        try:
            self._ensure_open()
        except OutboxError as exc:
            self.open_error = exc
            log.error("outbox %s cannot be opened: %s", self.path, exc)

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        if not self._memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=2.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a result confirmed to the patient survives power loss
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
                "parked TEXT)"
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if "parked" not in columns:  # an outbox written by an older version
                db.execute("ALTER TABLE outbox ADD COLUMN parked TEXT")
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
        except BaseException:
            db.close()
            raise
        return db

    def _ensure_open(self) -> sqlite3.Connection:
        """The connection, opening it (or a fresh one, moving a corrupt file aside) if needed."""
        if self._db is not None:
            return self._db
        try:
            self._db = self._connect()
        except sqlite3.OperationalError as exc:  # read-only, disk full, locked, missing directory
            raise OutboxError(f"outbox {self.path} cannot be written: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a database, or damaged pages
            if self._memory:
                raise OutboxError(f"in-memory outbox failed: {exc}") from exc
            self._move_aside(exc)
            try:
                self._db = self._connect()
            except sqlite3.Error as again:
                raise OutboxError(f"outbox {self.path} cannot be recreated: {again}") from again
        except OSError as exc:
            raise OutboxError(f"outbox {self.path} cannot be opened: {exc.strerror or exc}") from exc
        self.open_error = None
        return self._db

    def _move_aside(self, error: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                try:
                    source.rename(Path(f"{target}{suffix}"))
                except OSError as exc:
                    raise OutboxError(f"outbox {self.path} is corrupt ({error}) and cannot be moved aside: "
                                      f"{exc.strerror or exc}") from exc
        self.moved_aside = target
        log.error("outbox %s was corrupt (%s): moved to %s; a fresh outbox is started", self.path, error, target)

    def _execute(self, sql: str, parameters: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._ensure_open().execute(sql, parameters)
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc

    # ------------------------------------------------------------------ rows

    def put(self, message_id: str, topic: str, payload: bytes) -> None:
        """Store a message durably (idempotent for the same id). Raises OutboxError."""
        self._execute("INSERT OR IGNORE INTO outbox (id, topic, payload, created) VALUES (?, ?, ?, ?)",
                      (message_id, topic, payload, time.time()))

    def mark_attempt(self, message_id: str) -> None:
        self._execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (message_id,))

    def remove(self, message_id: str) -> bool:
        """Forget a message the terminal acknowledged; False if it was not here."""
        return self._execute("DELETE FROM outbox WHERE id = ?", (message_id,)).rowcount > 0

    def park(self, message_id: str, reason: str) -> None:
        """Keep a message the broker refused for good, but stop sending it."""
        self._execute("UPDATE outbox SET parked = ? WHERE id = ?", (reason[:200], message_id))

    def check_writable(self) -> None:
        """A real write (the header's user_version), to learn whether a failed disk is back."""
        self._execute(f"PRAGMA user_version = {int(time.time()) & 0x7FFFFFFF}")

    def pending(self) -> list[Pending]:
        """Everything not yet acknowledged and not parked, oldest first."""
        rows = self._execute("SELECT id, topic, payload, created, attempts FROM outbox "
                             "WHERE parked IS NULL ORDER BY created, rowid").fetchall()
        return [Pending(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def parked(self) -> list[tuple[str, str]]:
        """(id, reason) of every parked message."""
        return [(r[0], r[1]) for r in self._execute("SELECT id, parked FROM outbox WHERE parked IS NOT NULL")]

    def __len__(self) -> int:
        """Messages waiting for the terminal (parked ones not counted); 0 if the file cannot be read."""
        try:
            return self._execute("SELECT COUNT(*) FROM outbox WHERE parked IS NULL").fetchone()[0]
        except OutboxError:
            return 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
