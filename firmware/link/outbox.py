"""Durable outbox: a result is written to SQLite (WAL) before it is published and deleted only on
PUBACK, so a broker restart, a network drop or a power cut loses nothing; after reconnect every row
is sent again (the result ``id`` makes duplicates harmless at the terminal).

The database holds result payloads only: certificates and consent, never a face, PIN or My Number.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path


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
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a result acknowledged to the patient survives power loss
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)"
            )

    def put(self, message_id: str, topic: str, payload: bytes) -> None:
        """Store a message durably (idempotent for the same id)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (id, topic, payload, created) VALUES (?, ?, ?, ?)",
                (message_id, topic, payload, time.time()),
            )

    def mark_attempt(self, message_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (message_id,))

    def remove(self, message_id: str) -> None:
        """Forget a message the broker acknowledged."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def pending(self) -> list[Pending]:
        """Everything not yet acknowledged, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, created, attempts FROM outbox ORDER BY created, rowid"
            ).fetchall()
        return [Pending(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
