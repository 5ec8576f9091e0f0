"""Staff accounts of the staff page: a password file read once, kept only as scrypt hashes.

The file (``--staff-password-file``) has one account a line; blank lines and ``#`` comments are
skipped:

- ``name:secret`` — ``name`` is 1–32 of ``a-z 0-9 . _ -``; ``secret`` is a password or a hash
  line made by ``uketsuke terminal staff-password`` (``scrypt$N$r$p$salt$hash``), so the file
  need not hold a password at all;
- a line that does not start with such a name is the password of the one user ``staff``.

Plain passwords must be at least :data:`MIN_PASSWORD_LENGTH` characters; they are hashed when read
and the text is not kept. Hashing is :func:`hashlib.scrypt` (the standard library's, over
OpenSSL), checked with :func:`hmac.compare_digest`; an unknown user costs the same scrypt as a
known one. :class:`LoginThrottle` makes guessing slow: after a few failures in a row, every login
is refused for a while.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from firmware.errors import ConfigError

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
DEFAULT_USER = "staff"
USER_PATTERN = re.compile(r"^[a-z0-9._-]{1,32}$")
#: scrypt cost: N=2^14, r=8 → 16 MiB and some tens of ms per check (the "interactive login" setting).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_HASH = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
_MAX_FILE_BYTES = 64 * 1024


class StaffConfigError(ConfigError):
    """The staff password file is missing, unreadable or malformed; the message says how to fix it."""


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) for ``password``, with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return (f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
            f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")


def _parse_hash(line: str) -> tuple[int, int, int, bytes, bytes] | None:
    match = _HASH.match(line)
    if match is None:
        return None
    n, r, p = (int(v) for v in match.group(1, 2, 3))
    if n < 2 or n & (n - 1) or n > 2**20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        return None
    try:
        salt, digest = base64.b64decode(match[4], validate=True), base64.b64decode(match[5], validate=True)
    except (binascii.Error, ValueError):
        return None
    return (n, r, p, salt, digest) if salt and len(digest) == 32 else None


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the ``scrypt$…`` line ``stored`` (False for a malformed one)."""
    parsed = _parse_hash(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)


class StaffAccounts:
    """User name → scrypt hash line."""

    def __init__(self, hashes: Mapping[str, str]):
        for user, stored in hashes.items():
            if not USER_PATTERN.match(user) or _parse_hash(stored) is None:
                raise StaffConfigError(f"staff account {user[:32]!r}: a name of a-z 0-9 . _ - and a scrypt hash")
        if not hashes:
            raise StaffConfigError("no staff account: give at least one")
        self._hashes = dict(hashes)
        self._dummy = next(iter(self._hashes.values()))  # unknown users cost one scrypt too

    @property
    def users(self) -> list[str]:
        return sorted(self._hashes)

    def check(self, user: str, password: str) -> bool:
        stored = self._hashes.get(user)
        ok = check_password(stored or self._dummy, password)
        return ok and stored is not None

    @classmethod
    def load(cls, path: Path) -> StaffAccounts:
        """Read the password file (see the module docstring); raises :class:`StaffConfigError`."""
        where = f"the staff password file {path}"
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise StaffConfigError(f"{where} is not a file")
            if info.st_size > _MAX_FILE_BYTES:
                raise StaffConfigError(f"{where} is larger than {_MAX_FILE_BYTES} bytes: is it the right file?")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StaffConfigError(f"{where} does not exist: write the password into it "
                                   "(or a line from `uketsuke terminal staff-password`)") from None
        except PermissionError:
            raise StaffConfigError(f"{where} cannot be read by this user: check its owner and mode") from None
        except UnicodeDecodeError:
            raise StaffConfigError(f"{where} is not UTF-8 text") from None
        except OSError as exc:
            raise StaffConfigError(f"{where} cannot be read: {exc.strerror}") from None
        hashes: dict[str, str] = {}
        plain = False
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, secret = line.partition(":")
            if not sep or not USER_PATTERN.match(user):
                user, secret = DEFAULT_USER, line
            if user in hashes:
                raise StaffConfigError(f"{where}, line {number}: user {user!r} is given twice")
            if _parse_hash(secret) is not None:
                hashes[user] = secret
                continue
            if secret.startswith("scrypt$"):
                raise StaffConfigError(f"{where}, line {number}: a malformed scrypt hash "
                                       "(make one with `uketsuke terminal staff-password`)")
            if len(secret) < MIN_PASSWORD_LENGTH:
                raise StaffConfigError(f"{where}, line {number}: the password of {user!r} is shorter than "
                                       f"{MIN_PASSWORD_LENGTH} characters")
            hashes[user] = hash_password(secret)
            plain = True
        if not hashes:
            raise StaffConfigError(f"{where} has no account: write a password into it")
        if plain and info.st_mode & 0o077:
            log.warning("%s holds passwords and others may read it: chmod 600 it, or store hashes "
                        "(uketsuke terminal staff-password)", where)
        return cls(hashes)


class LoginThrottle:
    """After ``max_failures`` failed logins in a row, every login waits ``lockout_s`` (any user)."""

    def __init__(self, max_failures: int = 5, lockout_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock
        self._failures = 0
        self._locked_until = 0.0
        self._lock = threading.Lock()  # requests run on the server's worker threads

    def wait_s(self) -> float:
        """How long logins are still refused (0: a login may be tried now)."""
        with self._lock:
            return max(0.0, self._locked_until - self.clock())

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            locked = self._failures >= self.max_failures
            if locked:
                self._failures = 0
                self._locked_until = self.clock() + self.lockout_s
        if locked:
            log.warning("%d failed staff logins in a row: logins refused for %.0f s", self.max_failures,
                        self.lockout_s)

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0
