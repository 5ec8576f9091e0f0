"""Files on disk: atomic writes, and the face folder's journal (one file per result id, ever).

A clinic program polls the shared folder and may read a file the moment its name appears, and may
delete it once read. So every file is written as a dot-named temporary in the same folder, fsynced,
and renamed into place (``os.replace``, atomic on one file system), and the folder is fsynced.

Face files are deduplicated on the result id, across terminal restarts, by an append-only journal
(``.uketsuke/face-journal.txt``, one ``<result id> <file name>`` line per file). The order is:

1. the file's bytes go to ``face/.<result id>.tmp`` and are fsynced;
2. the journal line is appended and fsynced — this is the commit;
3. the temporary is renamed to its name and the folder fsynced; only then is the result "written".

A crash before 2 leaves a temporary that :meth:`FaceStore.open` deletes (the kiosk resends the
result, which is then written); a crash after 2 leaves a temporary that ``open`` renames into place
(the resend finds the id in the journal and writes nothing). The folder never holds two files for one
result, and a clinic program never sees half a file. Checking the folder itself would not do: the
clinic program removes files it has read.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
from pathlib import Path

from hal.errors import UketsukeError

log = logging.getLogger(__name__)

STATE_DIR = ".uketsuke"
JOURNAL = "face-journal.txt"
FACE_PREFIX = "OQSsiquc01res_face_"
_FACE_NAME = re.compile(rf"^{FACE_PREFIX}\d{{10}}\d{{3}}(\d{{17}})_\d{{14}}\.xml$")
_ID = re.compile(r"^[0-9a-f-]{36}$")

_FIXES = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EACCES: "permission denied: let the terminal's user write there",
    errno.EPERM: "permission denied: let the terminal's user write there",
    errno.EROFS: "the file system is read-only: mount it read-write",
    errno.ENOENT: "the folder is missing: create it or fix --files",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix --files",
}


class ClinicFilesError(UketsukeError, OSError):
    """A clinic file (or its folder) cannot be written; the message names the file and the fix."""


def describe(exc: OSError, what: str) -> ClinicFilesError:
    fix = _FIXES.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    error = ClinicFilesError(f"cannot write {what}: {fix}")
    error.errno = exc.errno
    error.__cause__ = exc
    return error


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (some network file systems refuse a directory fsync: that is fine)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_fully(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(directory: Path, name: str, data: bytes) -> Path:
    """``directory/name`` appears whole or not at all (temporary ``.name.tmp`` + fsync + replace).

    Raises:
        ClinicFilesError: the folder cannot be written (full, read-only, no permission, missing).
    """
    target, temporary = directory / name, directory / f".{name}.tmp"
    try:
        write_fully(temporary, data)
        os.replace(temporary, target)
        fsync_dir(directory)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise describe(exc, str(target)) from exc
    return target


class FaceStore:
    """The ``face/`` folder and its journal: :meth:`put` writes a result's file at most once."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.folder = self.root / "face"
        self.journal = self.root / STATE_DIR / JOURNAL
        self._names: dict[str, str] = {}  # result id → file name
        self._counter = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        """Create the folders, read the journal, finish or drop temporaries a crash left behind.

        Raises:
            ClinicFilesError: a folder cannot be created or the journal cannot be read.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self._names, self._counter = self._read_journal()
            for leftover in self.folder.glob(".*.tmp"):
                result_id = leftover.name[1:-len(".tmp")]
                if result_id in self._names:
                    os.replace(leftover, self.folder / self._names[result_id])
                    log.info("finished face file %s after a crash", self._names[result_id])
                else:
                    leftover.unlink()
            fsync_dir(self.folder)
        except OSError as exc:
            raise describe(exc, f"the clinic files folder {self.root}") from exc

    def _read_journal(self) -> tuple[dict[str, str], int]:
        names, counter = {}, 0
        if not self.journal.exists():
            return names, counter
        raw = self.journal.read_bytes()
        whole = raw[: raw.rfind(b"\n") + 1]
        if len(whole) != len(raw):  # a torn last line (crash mid-append): not committed
            with open(self.journal, "r+b") as f:
                f.truncate(len(whole))
                os.fsync(f.fileno())
        for line in whole.decode("ascii", "replace").splitlines():
            parts = line.split(" ")
            match = _FACE_NAME.match(parts[1]) if len(parts) == 2 and _ID.match(parts[0]) else None
            if match is None:
                log.warning("face journal: skipping a line that is not '<result id> <file name>'")
                continue
            names[parts[0]] = parts[1]
            counter = max(counter, int(match.group(1)))
        return names, counter

    def name_of(self, result_id: str) -> str | None:
        with self._lock:
            return self._names.get(result_id)

    def next_counter(self) -> int:
        with self._lock:
            return self._counter + 1

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._names)

    def put(self, result_id: str, name: str, data: bytes) -> tuple[str, bool]:
        """Write ``data`` as ``name`` for ``result_id`` unless that id has a file already.

        Returns:
            (the file name of this result, True if written now / False if it was written before).

        Raises:
            ClinicFilesError: the file or the journal cannot be written; nothing was committed unless
                the journal says so (then a later ``put`` for the id only finishes the rename).
        """
        if not _ID.match(result_id) or not _FACE_NAME.match(name):
            raise ValueError("a face file needs a result id (UUID) and an OQSsiquc01res_face_ name")
        temporary = self.folder / f".{result_id}.tmp"
        with self._lock:  # one writer thread in practice; the lock keeps counter and journal in step
            known = self._names.get(result_id)
            if known is not None:
                self._finish(temporary, known)
                return known, False
            try:
                write_fully(temporary, data)
            except OSError as exc:
                temporary.unlink(missing_ok=True)
                raise describe(exc, f"face file {self.folder / name}") from exc
            self._commit(result_id, name, temporary)
            self._names[result_id] = name
            self._counter = max(self._counter, int(_FACE_NAME.match(name).group(1)))
            self._finish(temporary, name)
            return name, True

    def _commit(self, result_id: str, name: str, temporary: Path) -> None:
        line = f"{result_id} {name}\n".encode("ascii")
        try:
            with open(self.journal, "ab") as f:
                size = f.tell()
                try:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError:
                    f.truncate(size)  # never leave a torn line for the next append to follow
                    raise
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise describe(exc, f"the face journal {self.journal}") from exc

    def _finish(self, temporary: Path, name: str) -> None:
        try:
            if temporary.exists():
                os.replace(temporary, self.folder / name)
                fsync_dir(self.folder)
        except OSError as exc:
            raise describe(exc, f"face file {self.folder / name}") from exc
