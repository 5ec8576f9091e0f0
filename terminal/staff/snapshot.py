"""What the staff page shows, copied out of the terminal's view under its lock and nothing more.

:func:`take` holds ``terminal.locked()`` only to copy references (results, verifications and acks are
immutable), then builds the rows outside it, so a page view never keeps paho's thread waiting. A row
never holds the certificate (only the first hex digits of its SHA-256, to tell check-ins apart), a
proof, a face score or anything the kiosk does not send (face images, PINs, the 12-digit number).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections import deque
from dataclasses import asdict, dataclass

from firmware.link.schemas import Method, Reply, ResultMessage
from hal.clock import JST
from terminal.visual import VisualOk

#: Kiosk events that announce something rather than enter a flow state.
ANNOUNCEMENTS = ("visual_wanted", "call_staff")


@dataclass(frozen=True)
class SentCommand:
    at: dt.datetime
    user: str
    site: str
    reader: str
    cmd: str
    id: str


class CommandLog:
    """The commands sent from the page, newest last (at most ``keep``)."""

    def __init__(self, keep: int = 50):
        self._sent: deque[SentCommand] = deque(maxlen=keep)

    def add(self, sent: SentCommand) -> None:
        self._sent.append(sent)

    def recent(self) -> list[SentCommand]:
        return list(self._sent)


@dataclass(frozen=True)
class ReaderRow:
    key: str
    site: str
    reader: str
    online: bool | None  # None: no status seen yet
    problems: tuple[str, ...]
    state: str | None  # the last flow state the kiosk announced
    state_at: dt.datetime | None
    wants_visual: bool  # the kiosk waits for a 目視確認
    proxy: bool  # ... of a proxy (代理)
    called_staff: bool  # the patient pressed 職員を呼ぶ since the last state change
    waiting_ok: str | None  # staff user of an OK sent and not yet spent


@dataclass(frozen=True)
class CheckInRow:
    id: str
    at: dt.datetime
    site: str
    reader: str
    method: str
    card_kind: str
    cert_status: str
    proxy: bool
    #: verified · failed · confirmed (staff OK) · unconfirmed (visual, no OK) · no-proof (bare read) · checking
    verdict: str
    problems: tuple[str, ...]
    fresh: bool | None  # None: no proof to be fresh
    eligibility: str | None
    acknowledged: bool
    face_file: str | None
    cert: str  # SHA-256 of the certificate, first 12 hex digits
    confirmed_by: str | None
    confirmed_at: dt.datetime | None


@dataclass(frozen=True)
class CommandRow:
    at: dt.datetime
    user: str
    site: str
    reader: str
    cmd: str
    id: str
    outcome: str


@dataclass(frozen=True)
class StaffView:
    site: str
    readers: tuple[ReaderRow, ...]
    checkins: tuple[CheckInRow, ...]  # newest first
    commands: tuple[CommandRow, ...]  # newest first
    problems: tuple[str, ...]  # the terminal's own (clinic files)
    results_total: int

    def reader(self, site: str, reader: str) -> ReaderRow | None:
        return next((r for r in self.readers if (r.site, r.reader) == (site, reader)), None)

    def as_json(self) -> dict:
        return asdict(self, dict_factory=lambda pairs: {k: _plain(v) for k, v in pairs})


def _plain(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def fingerprint(cert_der_b64: str) -> str:
    try:
        der = base64.b64decode(cert_der_b64, validate=True)
    except (binascii.Error, ValueError):
        return "-"
    return hashlib.sha256(der).hexdigest()[:12]


def _outcome(reply: Reply | None) -> str:
    if reply is None:
        return "waiting for the kiosk"
    if not reply.ok:
        return f"refused: {reply.error or 'no reason given'}"
    detail = reply.detail
    if detail.get("accepted") is False:
        return "not taken: the kiosk was not waiting for it"
    if detail.get("cancelled") is False:
        return "nothing to cancel"
    if "language" in detail:
        return f"language {detail['language']}"
    if "state" in detail:
        return f"state {detail['state']}, {detail.get('pending_results', 0)} results pending"
    return "done"


def _verdict(result: ResultMessage, verification, confirmation: VisualOk | None) -> str:
    if result.method == Method.VISUAL:
        return "confirmed" if confirmation is not None else "unconfirmed"
    if verification is None:
        return "checking"
    if verification.verified is None:
        return "no-proof"
    return "verified" if verification.verified else "failed"


def take(terminal, commands: list[SentCommand] | None = None, limit: int = 50) -> StaffView:
    """The page's view of ``terminal`` now (its newest ``limit`` check-ins)."""
    commands = commands or []
    with terminal.locked():  # copies of references only; the rows are built after it
        view = terminal.view
        statuses, problems = dict(view.statuses), {k: tuple(v) for k, v in view.problems.items()}
        events = {key: list(recent) for key, recent in view.recent_events.items()}
        results = view.results[-limit:]
        total = len(view.results)
        per_result = {r.id: (view.verifications.get(r.id), view.answers.get(r.id), r.id in view.acknowledged,
                             view.face_files.get(r.id), view.visual_checks.get(r.id)) for r in results}
        replies = {c.id: view.replies_by_command.get(c.id) for c in commands}
        waiting = terminal.visual.waiting
        file_errors = list(view.file_errors[-3:])
    files = getattr(terminal, "files", None)
    terminal_problems = tuple((files.problems if files is not None else []) + file_errors)

    keys = set(statuses) | set(events) | {f"{r.site}/{r.reader}" for r in results}
    last_state: dict[str, tuple[str, dt.datetime]] = {}
    called: set[str] = set()
    proxy: set[str] = set()
    for key, recent in events.items():
        for event in reversed(recent):  # newest first, back to the last flow state
            if event.state == "call_staff":
                called.add(key)
            elif event.state == "visual_wanted":
                if event.detail == "proxy":
                    proxy.add(key)
            else:
                last_state[key] = (event.state, event.ts.astimezone(JST))
                break
    readers = []
    for key in sorted(keys):
        site, _, reader = key.partition("/")
        state, state_at = last_state.get(key, (None, None))
        ok = next((o for o in reversed(waiting) if (o.site, o.reader) == (site, reader)), None)
        readers.append(ReaderRow(key, site, reader, {"online": True, "offline": False}.get(statuses.get(key)),
                                 problems.get(key, ()), state, state_at, state == "visual",
                                 state == "visual" and key in proxy, key in called, ok.staff if ok else None))
    checkins = []
    for result in reversed(results):
        verification, ack, acknowledged, face_file, confirmation = per_result[result.id]
        checkins.append(CheckInRow(
            id=result.id, at=result.ts.astimezone(JST), site=result.site, reader=result.reader,
            method=result.method.value, card_kind=result.card_kind, cert_status=result.cert_status.value,
            proxy=result.proxy, verdict=_verdict(result, verification, confirmation),
            problems=tuple(ack.problems if ack is not None else ()),
            fresh=verification.fresh if verification is not None and verification.verified is not None else None,
            eligibility=ack.eligibility.value if ack is not None and ack.eligibility else None,
            acknowledged=acknowledged, face_file=face_file, cert=fingerprint(result.cert_der_b64),
            confirmed_by=confirmation.staff if confirmation else None,
            confirmed_at=confirmation.at.astimezone(JST) if confirmation else None))
    rows = tuple(CommandRow(c.at.astimezone(JST), c.user, c.site, c.reader, c.cmd, c.id, _outcome(replies[c.id]))
                 for c in reversed(commands))
    return StaffView(terminal.site, tuple(readers), tuple(checkins), rows, terminal_problems, total)
