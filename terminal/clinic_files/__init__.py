"""The clinic file interface of the reference terminal: ``face/``, ``req/`` → ``res/``.

A clinic's レセコン/電子カルテ reads the 資格確認端末's shared folder (docs/notes/clinic-files.md):

- ``face/``: one ``OQSsiquc01res_face_….xml`` per verified check-in, written by the ``terminal-files``
  thread (:class:`ClinicFiles.submit`); the terminal acknowledges the result to the kiosk only once
  its file is in place, so a full disk delays the ack (the kiosk keeps and resends the result) and
  loses nothing; the journal (:mod:`terminal.clinic_files.store`) makes a resend write nothing new.
- ``req/`` → ``res/``: the ``terminal-req`` thread polls ``req/`` for ``OQSsiquc01req_….xml``
  number-based lookups, answers each from the fixture registry as ``OQSsiquc01res_….xml`` (the same
  name with ``req`` → ``res``) and then deletes the request; a request it cannot read gets an error
  response (SegmentOfResult 9), never a crash.

Both threads are :class:`firmware.supervisor.Supervised`: an unexpected exception is logged, passed
to ``report`` and the loop starts again; :attr:`ClinicFiles.problems` lists what is wrong now.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.link.schemas import ResultMessage, now_utc
from firmware.supervisor import Supervised
from hal.clock import JST
from terminal.clinic_files.content import (
    RequestError,
    error_fields,
    face_fields,
    response_fields,
    search_info,
)
from terminal.clinic_files.documents import (
    DocumentError,
    build_document,
    encoding_id,
    read_document,
    text_at,
)
from terminal.clinic_files.store import FACE_PREFIX, ClinicFilesError, FaceStore, atomic_write, describe
from terminal.registry import Answer, Registry

__all__ = ["ClinicFiles", "ClinicFilesError", "FaceJob", "face_file_name", "DEFAULT_INSTITUTION_CODE"]

log = logging.getLogger(__name__)

#: A fictitious 医療機関コード (prefecture 99 does not exist); set the clinic's own with --institution-code.
DEFAULT_INSTITUTION_CODE = "9999999999"
#: The 3-digit 処理コード of a face file name; its meaning is not public (docs/notes/clinic-files.md).
DEFAULT_PROCESSING_CODE = "000"
DEFAULT_ROOT = Path("var/terminal")
MAX_REQUEST_BYTES = 64 * 1024
_REQUEST = re.compile(r"^(OQS[A-Za-z]{5}\d{2})req_([A-Za-z0-9_.-]{1,120})\.xml$")
_SINGLE = "OQSsiquc01"


def face_file_name(institution_code: str, processing_code: str, counter: int, moment: dt.datetime) -> str:
    """``OQSsiquc01res_face_`` + 医療機関コード (10) + 処理コード (3) + counter (17) + ``_yyyyMMddHHmmss.xml``."""
    return (f"{FACE_PREFIX}{institution_code}{processing_code}{counter:017d}_"
            f"{moment.astimezone(JST).strftime('%Y%m%d%H%M%S')}.xml")


@dataclass(frozen=True)
class FaceJob:
    result: ResultMessage
    answer: Answer
    #: Called on the writer thread: (result id, file name or None, the error or None).
    done: Callable[[str, str | None, Exception | None], None]


class ClinicFiles:
    """The shared folder under ``root`` (``face/``, ``req/``, ``res/``), served by two threads.

    Args:
        encoding: ``shift_jis`` (default: what files in the field mostly are) or ``utf-8``; written
            as CharacterCodeIdentifier 1 or 0.
        report: ``report(thread name, exception or None)`` when a thread fails (None: it recovered).
    """

    def __init__(self, root: str | Path, registry: Registry, *, institution_code: str = DEFAULT_INSTITUTION_CODE,
                 encoding: str = "shift_jis", processing_code: str = DEFAULT_PROCESSING_CODE,
                 poll_s: float = 0.5, report: Callable[[str, BaseException | None], None] | None = None,
                 clock: Callable[[], dt.datetime] = now_utc):
        if not re.fullmatch(r"\d{10}", institution_code):
            raise ValueError(f"the institution code (医療機関コード) must be 10 digits, not {institution_code!r}")
        if not re.fullmatch(r"\d{3}", processing_code):
            raise ValueError(f"the processing code must be 3 digits, not {processing_code!r}")
        self.root = Path(root)
        self.registry = registry
        self.institution_code = institution_code
        self.processing_code = processing_code
        self.charset = encoding_id(encoding)
        self.poll_s = poll_s
        self.clock = clock
        self.faces = FaceStore(self.root)
        self.requests_dir, self.responses_dir = self.root / "req", self.root / "res"
        self._jobs: queue.Queue[FaceJob] = queue.Queue()
        self._report = report
        self._problems: dict[str, str] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # request name → (size, mtime) at the last poll
        self._ignored: set[str] = set()  # names in req/ that are not requests (warned once)
        self._gone: set[tuple[str, int]] = set()  # answered requests we could not delete (name, mtime)
        self._writer = Supervised("terminal-files", self._write_step, report=self._failed)
        self._watcher = Supervised("terminal-req", self._poll_step, report=self._failed)
        self.answered = 0  # requests answered (tests, the console)

    # -- life cycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the folders and recover the face journal (raises :class:`ClinicFilesError`)."""
        self.faces.open()
        for folder in (self.requests_dir, self.responses_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise describe(exc, f"the clinic files folder {folder}") from exc

    def start(self) -> None:
        self.open()
        self._writer.start()
        self._watcher.start()

    def stop(self) -> None:
        self._watcher.stop()
        self._writer.stop()

    @property
    def problems(self) -> list[str]:
        return list(self._problems.values())

    def _failed(self, name: str, error: BaseException | None) -> None:
        if error is None:
            self._problems.pop(name, None)
        else:
            self._problems[name] = f"{name} failed and restarts: {type(error).__name__}"
        if self._report is not None:
            self._report(name, error)

    # -- face/ ------------------------------------------------------------------------------------

    def submit(self, job: FaceJob) -> None:
        """Queue a verified result's face file (never blocks; the writer thread calls ``job.done``)."""
        self._jobs.put(job)

    def face_document(self, result: ResultMessage, answer: Answer) -> bytes:
        return build_document(face_fields(result, answer, result.ts, self.institution_code, self.charset),
                              self.charset).data

    def write_face(self, result: ResultMessage, answer: Answer) -> tuple[str, bool]:
        """Write the result's face file now (at most once per result id): (name, written now).

        The file's times are the check-in's (``result.ts``), so a resend would make the same bytes.
        """
        known = self.faces.name_of(result.id)
        if known is not None:
            return self.faces.put(result.id, known, b"")  # only finishes an interrupted rename
        name = face_file_name(self.institution_code, self.processing_code, self.faces.next_counter(), result.ts)
        built = build_document(face_fields(result, answer, result.ts, self.institution_code, self.charset),
                               self.charset)
        if built.substituted:
            log.warning("face file %s: %d characters the encoding cannot carry became 〓", name, built.substituted)
        return self.faces.put(result.id, name, built.data)

    def _write_step(self, stopping) -> float | None:
        try:
            job = self._jobs.get(timeout=0.2)
        except queue.Empty:
            return None
        try:
            name, _ = self.write_face(job.result, job.answer)
        except ClinicFilesError as exc:
            log.error("%s (result %s: not acknowledged, the kiosk resends it)", exc, job.result.id)
            self._problems["face"] = str(exc)
            job.done(job.result.id, None, exc)
            return None
        except Exception as exc:  # a bug must not leave the result waiting for a file forever
            log.exception("face file for result %s failed", job.result.id)
            job.done(job.result.id, None, exc)
            return None
        self._problems.pop("face", None)
        job.done(job.result.id, name, None)
        return None

    # -- req/ → res/ ------------------------------------------------------------------------------

    def _poll_step(self, stopping) -> float:
        self.poll()
        return self.poll_s

    def poll(self) -> int:
        """Answer every request that stood still since the last poll; returns how many were answered."""
        try:
            entries = sorted(os.scandir(self.requests_dir), key=lambda e: e.name)
        except OSError as exc:
            self._problems["req"] = str(describe(exc, f"(read) the request folder {self.requests_dir}"))
            return 0
        present, answered = set(), 0
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            present.add(entry.name)
            stat = entry.stat(follow_symlinks=False)
            shape = (stat.st_size, stat.st_mtime_ns)
            if (entry.name, stat.st_mtime_ns) in self._gone:
                continue
            if self._seen.get(entry.name) != shape:  # new or still growing: wait for the next poll
                self._seen[entry.name] = shape
                continue
            if self._answer(entry.name, stat.st_size):
                answered += 1
                self._seen.pop(entry.name, None)
        for name in set(self._seen) - present:
            self._seen.pop(name)
        self._gone = {(name, mtime) for name, mtime in self._gone if name in present}
        self.answered += answered
        return answered

    def _answer(self, name: str, size: int) -> bool:
        """Answer one request into ``res/`` and delete it; False if ``res/`` cannot be written now."""
        match = _REQUEST.match(name)
        if match is None:
            if name not in self._ignored:
                self._ignored.add(name)
                log.warning("req/: ignoring %r: not an OQS…req_….xml request", name[:80])
            return False
        prefix, rest = match.groups()
        response_name = f"{prefix}res_{rest}.xml"
        now = self.clock()
        path = self.requests_dir / name
        arbitrary = ""
        try:
            if prefix != _SINGLE:
                raise RequestError("unsupported", f"{prefix} requests are not served")
            if size > MAX_REQUEST_BYTES:
                raise RequestError("too_large", f"larger than {MAX_REQUEST_BYTES} bytes")
            fields = read_document(path.read_bytes())
            arbitrary = text_at(fields, "MessageHeader", "ArbitraryFileIdentifier")[:64]
            info = search_info(fields)
            answer = self.registry.find_insured(info.insurer_number, info.symbol, info.number, info.branch,
                                                info.birthdate)
            document = response_fields(info, answer, now, self.institution_code, self.charset)
            log.info("req/%s answered: QualificationValidity %s", name, answer.validity)
        except (RequestError, DocumentError) as exc:
            kind = exc.kind if isinstance(exc, RequestError) else "malformed"
            log.warning("req/%s: %s: answering with an error", name, exc)
            document = error_fields(kind, now, self.institution_code, self.charset, arbitrary)
        except OSError as exc:  # vanished or unreadable: nothing to answer yet
            log.warning("req/%s cannot be read: %s", name, exc.strerror)
            return False
        try:
            atomic_write(self.responses_dir, response_name, build_document(document, self.charset).data)
        except ClinicFilesError as exc:
            self._problems["res"] = str(exc)
            log.error("%s (the request stays in req/ and is answered when it can be)", exc)
            return False
        self._problems.pop("res", None)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # answered; do not answer it again while it sits there unchanged
            log.error("req/%s was answered but cannot be deleted: %s", name, exc.strerror)
            self._gone.add((name, path.stat().st_mtime_ns if path.exists() else 0))
        return True

