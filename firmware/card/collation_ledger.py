"""The kiosk's record of the 照合番号B tries it spent, per card, so a card never loses a second one here.

Why: the 券面事項確認AP's 照合番号B counter has 10 tries for the card's whole life. A systematic OCR
misread (the same glare, the same glyph, every tap) passes the gate every time, so without a memory
the kiosk would spend one try per tap. The ledger remembers every failed VERIFY the kiosk caused;
:class:`~firmware.card.collation.CollationPolicy` refuses any card that has one.

What is stored (``<data_dir>/collation-ledger.json``, JSON written atomically: tmp + fsync + rename):
per card, only ``HMAC-SHA256(kiosk key, issuer + serial of the JPKI auth certificate)`` and the Unix
times of its failed or unresolved tries. No serial, no name, no birth date, no digits of 照合番号B.
The kiosk key is 32 random bytes in ``<data_dir>/collation-ledger.key`` (created 0600 on first use),
so the keys cannot be recomputed from a certificate without the kiosk's key file.
Cards whose tries all succeeded leave nothing behind.

Write-ahead: :meth:`CollationLedger.begin` records "attempt in progress" on disk *before* the VERIFY is
sent; :meth:`~CollationLedger.succeeded` / :meth:`~CollationLedger.failed` resolve it afterwards. An
attempt that was never resolved (power cut, card pulled mid-VERIFY, a write that failed afterwards)
counts as a failed try for ever: the kiosk cannot know it was not one. If the write-ahead itself
cannot be written, :meth:`begin` raises and the caller must not send.

Fail closed: whenever the kiosk cannot know a card's history it refuses every 照合番号B try (PIN and
staff still work) and says so in the log at ERROR. That is the case when

- the ledger file is unreadable or not a ledger (it is moved aside as ``collation-ledger.corrupt-*``);
- the key file is missing or damaged while a ledger exists, or the ledger is missing while the key
  exists (both are created together, so one without the other means history was lost);
- a write failed in this process (the on-disk state may be behind);
- a ``collation-ledger.blocked`` marker is present (written when corruption was found, so that a
  restart after the corrupt file was moved aside does not look like a fresh kiosk).

Only a technician clears that state, with :meth:`CollationLedger.reset`, accepting that cards which
failed here before may lose one more try each. A data directory wiped as a whole looks like a new
kiosk; that cannot be detected here.

Limits (not guarantees the code keeps): the key is the *certificate*, which the municipality renews
every 5 years, so a renewed card is a new card to the ledger (at most one lost try per certificate
per kiosk); other kiosks keep their own ledgers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import CollationLedgerUnavailable

log = logging.getLogger(__name__)

LEDGER_NAME = "collation-ledger.json"
KEY_NAME = "collation-ledger.key"
LOCK_NAME = "collation-ledger.lock"
BLOCKED_NAME = "collation-ledger.blocked"
FORMAT = "uketsuke-collation-ledger"
VERSION = 1
KEY_BYTES = 32
_DOMAIN = b"uketsuke/collation-ledger/v1\x00"


@dataclass(frozen=True)
class Attempt:
    """A write-ahead record of one VERIFY in progress; resolve it with succeeded() or failed()."""

    card_key: str
    attempt_id: str

    def __repr__(self) -> str:
        return "Attempt(<card>)"


class CollationLedger:
    """Per-card history of the 照合番号B tries this kiosk spent, kept in ``data_dir``.

    Every operation takes an exclusive ``flock`` on ``collation-ledger.lock`` and re-reads the file, so
    several objects (or processes) on the same directory see one history. Nothing is cached but the
    fail-closed state.
    """

    def __init__(self, data_dir: str | Path, *, clock: Callable[[], float] = time.time):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LEDGER_NAME
        self.key_path = self.data_dir / KEY_NAME
        self.blocked_path = self.data_dir / BLOCKED_NAME
        self._clock = clock
        self._problem: str | None = None
        self._key: bytes | None = None
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with self._locked():
                self._open()
        except CollationLedgerUnavailable:
            pass  # already reported and remembered by _fail
        except OSError as exc:
            self._fail(f"the ledger in {self.data_dir} cannot be opened ({exc.__class__.__name__}: {exc})")

    def __repr__(self) -> str:
        return f"CollationLedger({self.data_dir}, available={self.available})"

    # ------------------------------------------------------------------ state

    @property
    def available(self) -> bool:
        """False when the kiosk cannot know card histories (then every 照合番号B try is refused)."""
        return self._problem is None

    @property
    def problem(self) -> str | None:
        """Why the ledger is unavailable (for logs, self-test and technicians), or None."""
        return self._problem

    def card_key(self, certificate) -> str:
        """The card's ledger key from its JPKI auth certificate (``.issuer`` string, ``.serial`` int).

        HMAC-SHA256 under the kiosk key, hex: it identifies the card to this kiosk only.
        """
        key = self._require_key()
        message = _DOMAIN + str(certificate.issuer).encode("utf-8") + b"\x00" + str(int(certificate.serial)).encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def failures(self, card_key: str) -> int:
        """Tries this kiosk lost on the card: failed VERIFYs plus attempts never resolved.

        Raises:
            CollationLedgerUnavailable: the history cannot be known (fail closed).
        """
        self._require_available()
        with self._guarded("read"):
            entry = self._load().get(card_key)
        return 0 if entry is None else len(entry["failed"]) + len(entry["pending"])

    def begin(self, card_key: str) -> Attempt:
        """Write "attempt in progress" for the card (call *before* sending VERIFY).

        Raises:
            CollationLedgerUnavailable: it could not be written; the caller must not send.
        """
        self._require_available()
        attempt = Attempt(card_key, secrets.token_hex(8))
        with self._guarded("write-ahead"):
            cards = self._load()
            entry = cards.setdefault(card_key, {"failed": [], "pending": []})
            entry["pending"].append({"id": attempt.attempt_id, "since": int(self._clock())})
            self._write(cards)
        return attempt

    def succeeded(self, attempt: Attempt) -> None:
        """The card accepted the number: drop the write-ahead record (nothing is kept for the card).

        Raises:
            CollationLedgerUnavailable: the write failed; the record stays and counts as a failure.
        """
        self._resolve(attempt, failed=False)

    def failed(self, attempt: Attempt) -> None:
        """The try was lost (or may have been): keep it as a failure with its time.

        Raises:
            CollationLedgerUnavailable: the write failed; the write-ahead record still counts.
        """
        self._resolve(attempt, failed=True)

    def reset(self) -> None:
        """Technician action: start a new, empty ledger (new key), clearing the fail-closed state.

        Cards that failed here before are forgotten and may each lose one more try; the old files are
        kept beside it as ``*.discarded-<time>`` for inspection.
        """
        stamp = time.strftime("%Y%m%dT%H%M%S")
        with self._locked():
            for path in (self.path, self.key_path, self.blocked_path):
                if path.exists():
                    path.rename(path.with_name(f"{path.name}.discarded-{stamp}"))
            self._problem = None
            self._key = None
            self._open()
        log.warning("照合番号B ledger reset by a technician: earlier failures at this kiosk are forgotten")

    # ------------------------------------------------------------------ internals

    def _open(self) -> None:
        """First use: create key + empty ledger together. Later: both must be there and sound."""
        if self.blocked_path.exists():
            self._fail(f"{self.blocked_path} is present: the ledger was found damaged earlier; "
                       "a technician must reset it")
            return
        has_key, has_ledger = self.key_path.exists(), self.path.exists()
        if not has_key and not has_ledger:
            self._create_key()
            self._write({})
            log.info("照合番号B ledger created in %s", self.data_dir)
        elif not has_key:
            self._fail(f"{self.key_path} is missing while {self.path} exists: history cannot be matched")
            return
        elif not has_ledger:
            self._fail(f"{self.path} is missing while {self.key_path} exists: history was lost")
            return
        self._require_key()
        if self._problem is None:
            self._load()

    def _create_key(self) -> None:
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.data_dir)

    def _require_key(self) -> bytes:
        self._require_available()
        if self._key is None:
            try:
                key = self.key_path.read_bytes()
            except OSError as exc:
                self._fail(f"{self.key_path} cannot be read ({exc.__class__.__name__})")
                raise CollationLedgerUnavailable(self._problem or "") from None
            if len(key) != KEY_BYTES:
                self._fail(f"{self.key_path} is damaged ({len(key)} bytes, not {KEY_BYTES})")
                raise CollationLedgerUnavailable(self._problem or "")
            self._key = key
        return self._key

    def _require_available(self) -> None:
        if self._problem is not None:
            raise CollationLedgerUnavailable(f"照合番号B ledger unavailable: {self._problem}")

    def _fail(self, problem: str) -> None:
        if self._problem is None:
            log.error("照合番号B ledger unavailable, refusing every 照合番号B try until a technician "
                      "resets it: %s", problem)
        self._problem = problem

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextlib.contextmanager
    def _guarded(self, what: str) -> Iterator[None]:
        """Lock, and turn any OS error into the fail-closed state + CollationLedgerUnavailable."""
        try:
            with self._locked():
                yield
        except CollationLedgerUnavailable:
            raise
        except OSError as exc:
            self._fail(f"{what} failed ({exc.__class__.__name__}: {exc})")
            raise CollationLedgerUnavailable(f"照合番号B ledger {what} failed") from None
        self._require_available()  # _load may have found corruption

    def _load(self) -> dict:
        """The cards map from disk; a damaged file is moved aside and the ledger fails closed."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._fail(f"{self.path} disappeared: history was lost")
            raise CollationLedgerUnavailable(self._problem or "") from None
        try:
            cards = _parse(raw)
        except ValueError as exc:
            self._quarantine(str(exc))
            raise CollationLedgerUnavailable(self._problem or "") from None
        return cards

    def _quarantine(self, why: str) -> None:
        """Mark blocked (first, so a restart cannot mistake the kiosk for new), then move the file aside."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"collation-ledger.corrupt-{stamp}.json")
        try:
            _atomic_write(self.blocked_path, f"ledger damaged at {stamp}: {why}\n".encode())
            self.path.rename(aside)
            _fsync_dir(self.data_dir)
            where = f"moved to {aside.name}"
        except OSError as exc:
            where = f"could not be moved aside ({exc.__class__.__name__})"
        self._fail(f"{self.path.name} is damaged ({why}); {where}")

    def _write(self, cards: dict) -> None:
        document = {"format": FORMAT, "version": VERSION, "cards": cards}
        _atomic_write(self.path, json.dumps(document, sort_keys=True, separators=(",", ":")).encode())

    def _resolve(self, attempt: Attempt, *, failed: bool) -> None:
        self._require_available()
        with self._guarded("resolve"):
            cards = self._load()
            entry = cards.get(attempt.card_key)
            pending = [] if entry is None else entry["pending"]
            mine = [p for p in pending if p["id"] == attempt.attempt_id]
            if not mine:  # already resolved, or the ledger was reset since: count conservatively
                if failed:
                    entry = cards.setdefault(attempt.card_key, {"failed": [], "pending": []})
                    entry["failed"].append(int(self._clock()))
                    self._write(cards)
                return
            entry["pending"] = [p for p in pending if p["id"] != attempt.attempt_id]
            if failed:
                entry["failed"].append(int(self._clock()))
            if not entry["failed"] and not entry["pending"]:
                del cards[attempt.card_key]
            self._write(cards)


def _parse(raw: bytes) -> dict:
    """Validate the whole document strictly; anything unexpected is damage (ValueError)."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a 照合番号B ledger")
    if document.get("version") != VERSION:
        raise ValueError(f"unknown ledger version {document.get('version')!r}")
    cards = document.get("cards")
    if not isinstance(cards, dict):
        raise ValueError("no cards map")
    for key, entry in cards.items():
        if not (isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
            raise ValueError("a card key is not an HMAC-SHA256 hex digest")
        if not (isinstance(entry, dict) and set(entry) == {"failed", "pending"}):
            raise ValueError("a card entry is malformed")
        if not (isinstance(entry["failed"], list) and all(type(t) is int for t in entry["failed"])):
            raise ValueError("a failure list is malformed")
        if not (isinstance(entry["pending"], list) and all(
                isinstance(p, dict) and set(p) == {"id", "since"} and isinstance(p["id"], str)
                and type(p["since"]) is int for p in entry["pending"])):
            raise ValueError("a pending list is malformed")
    return cards


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old or the new file: tmp, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
