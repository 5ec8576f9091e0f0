"""The reference eligibility terminal: listens to every reader of a site and shows what arrives.

It stands in for the clinic's 資格確認端末 in demos and tests. It validates each payload with the
same pydantic contracts as the kiosk, after the same size and depth limits (a broken or hostile
message is reported, never crashes it), and prints one line per result. Each result is recorded,
then acknowledged on the reader's ``ack`` topic — the kiosk deletes a result only then — and a
resent duplicate is acknowledged again but recorded once.

A listening terminal also answers the kiosks' requests: it issues single-use challenges, answers
context and registration requests from its fixture registry (:mod:`terminal.registry`), and
verifies each result's proof (:mod:`terminal.verify`); the ``ack`` carries the verification
(``verified``, ``problems``) and the eligibility answer. A throwaway ``terminal send`` client
answers no requests.

The terminal connects with the same TLS set-up as the kiosk (:mod:`firmware.link.tls`: its own
certificate, ``terminal.{site}`` in the broker's ACL, which alone may publish commands and
answers); a refused handshake is printed once per cause and kept in ``view.broker_problem``.

The listening terminal keeps a persistent session (MQTT 5 session expiry, or a 3.1.1 session
without clean start) under a stable client id, so results published while it is offline wait for
it at the broker. Staff commands (start, cancel, visual_ok, …) go out with :meth:`send_command`;
over MQTT 5 each names the reader's ``reply`` topic as its ``ResponseTopic`` and its id as
``CorrelationData``, and a reply is matched by that correlation data when it has some (so a command
whose payload id the kiosk could not read still gets its reply), else by the payload's ``id``.

With ``files`` (:class:`terminal.clinic_files.ClinicFiles`) the terminal also serves the clinic file
interface: a *verified* result (its proof checked, ``verified`` true) is acknowledged only once its
``face/`` file is in place, written on the ``terminal-files`` thread, not paho's. A result whose file
cannot be written (full disk, read-only folder) is not acknowledged: the kiosk keeps it in its outbox
and resends it, and each resend tries the file again; the file journal makes a resend, or a result
redelivered after a terminal restart, write nothing twice. A staff visual check (目視確認) has no
proof; it gets a face file only when this terminal's staff sent the reader's ``visual_ok``
(:mod:`terminal.visual`: each OK sent is recorded and spent on that reader's next visual result);
an unconfirmed one is flagged in the ack's problems. Other results without a verified proof (a
failed proof, a bare read) get no face file and are acknowledged at once.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.card.certificate import AuthCertificate, CertificateError
from firmware.config import Broker
from firmware.errors import MessageError
from firmware.link.limits import MAX_REQUEST_BYTES, MAX_RESULT_BYTES, MAX_SMALL_BYTES
from firmware.link.schemas import (
    TOPIC_ROOT,
    AckMessage,
    ChallengeOffer,
    ChallengeRequest,
    Command,
    CommandName,
    ContextAnswer,
    ContextRequest,
    EventMessage,
    Method,
    RegistrationAnswer,
    RegistrationRequest,
    Reply,
    ResultMessage,
    StatusMessage,
    now_utc,
    parse,
    safe_text,
    topic,
)
from firmware.link.tls import ConnectTrouble, client_credentials, watch_errors
from terminal.certificates import RevocationCheck
from terminal.clinic_files import ClinicFiles, FaceJob
from terminal.registry import Registry
from terminal.verify import ChallengeBook, Verification, verify_result
from terminal.visual import UNCONFIRMED, VisualConfirmations, VisualOk

log = logging.getLogger(__name__)

_MODELS = {"status": StatusMessage, "event": EventMessage, "result": ResultMessage, "reply": Reply}
#: What a listening terminal answers: request topic → its model (the answer goes to the same reader).
_REQUESTS = {"challenge_request": ChallengeRequest, "context_request": ContextRequest,
             "registration_request": RegistrationRequest}
_LIMITS = {"result": MAX_RESULT_BYTES, "context_request": MAX_REQUEST_BYTES,
           "registration_request": MAX_REQUEST_BYTES}


@dataclass
class TerminalView:
    """What the terminal has seen, for tests and the console view."""

    results: list[ResultMessage] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    events: list[EventMessage] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    replies_by_command: dict[str, Reply] = field(default_factory=dict)  # command id (correlation) → reply
    errors: list[str] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)  # result ids we have acked at least once
    problems: dict[str, list[str]] = field(default_factory=dict)  # site/reader → its problem lines
    verifications: dict[str, Verification] = field(default_factory=dict)  # result id → its proof's check
    answers: dict[str, AckMessage] = field(default_factory=dict)  # result id → the ack we send for it
    challenges_issued: int = 0
    face_files: dict[str, str] = field(default_factory=dict)  # result id → its face file's name
    file_errors: list[str] = field(default_factory=list)  # face files that could not be written (yet)
    contexts: list[ContextAnswer] = field(default_factory=list)
    registrations: list[RegistrationAnswer] = field(default_factory=list)
    #: site/reader → that reader's latest events (the staff page; an event names no site itself).
    recent_events: dict[str, deque[EventMessage]] = field(default_factory=dict)
    #: visual result id → the staff OK that confirmed it, or None: unconfirmed (no face file).
    visual_checks: dict[str, VisualOk | None] = field(default_factory=dict)
    #: Why the terminal cannot connect (a refused TLS handshake, a refused CONNECT), None once connected.
    broker_problem: str | None = None


def describe_answer(ack: AckMessage) -> str:
    """`` verified=yes eligibility=valid`` and the problems, for the line of a result."""
    verified = {True: "yes", False: "NO", None: "-"}[ack.verified]
    eligibility = ack.eligibility.value if ack.eligibility else "-"
    problems = f" problems: {'; '.join(ack.problems)}" if ack.problems else ""
    return f" verified={verified} eligibility={eligibility}{problems}"


def describe_result(result: ResultMessage) -> str:
    """One human line for a result (certificate subject, status, method) — no personal data."""
    try:
        subject = AuthCertificate(base64.b64decode(result.cert_der_b64)).subject
    except CertificateError:
        subject = "(certificate does not parse)"
    threshold = f"{result.face_threshold:.3f}" if result.face_threshold is not None else "-"
    score = f" score={result.face_score:.3f}/{threshold}" if result.face_score is not None else ""
    return (f"[{result.site}/{result.reader}] {result.method.value} {result.card_kind} "
            f"cert={result.cert_status.value} subject={subject}{score} id={result.id}")


#: Events kept per reader for the staff page (its last flow state and what was announced since).
RECENT_EVENTS = 16
#: How long the broker keeps a listening terminal's session (and its queued results) while it is away.
SESSION_EXPIRY_S = 7 * 24 * 3600


class ReferenceTerminal:
    """A terminal for ``site`` (``+`` = every site).

    Args:
        name: the stable part of the client id of a listening terminal (one persistent session per
            name); None makes a throwaway client (``terminal send``) with a random id and no session.
    """

    def __init__(self, broker: Broker, site: str = "+", printer: Callable[[str], None] | None = None,
                 name: str | None = "listen", *, registry: Registry | None = None,
                 issuer_keys: Mapping | None = None, challenge_ttl_s: float = 300.0,
                 files: ClinicFiles | None = None, visual: VisualConfirmations | None = None,
                 trust_anchors: Sequence = (), grace_rule: str = "months",
                 min_face_threshold: float | None = None, revoked: RevocationCheck | None = None):
        self.broker = broker
        self.site = site
        self.view = TerminalView()
        self.printer = printer
        self.registry = registry or Registry()
        self.issuer_keys = issuer_keys
        #: How proofs are judged (terminal.verify.verify_result): CA certificates the user-authentication
        #: certificate must be issued by, the kiosk's grace rule, the lowest face threshold accepted
        #: (None: the kiosk's calibrated one), and a revocation lookup if there is one (None: not checked).
        self.trust_anchors = tuple(trust_anchors)
        self.grace_rule = grace_rule
        self.min_face_threshold = min_face_threshold
        self.revoked = revoked
        self.challenges = ChallengeBook(challenge_ttl_s)
        self.serves_requests = name is not None  # a throwaway sender must not answer (nor issue) anything
        self._seen_ids: set[str] = set()
        self.visual = visual or VisualConfirmations()  # the 目視確認 OKs this terminal's staff sent
        self.files = files if name is not None else None  # a throwaway sender writes no clinic files
        self._file_state: dict[str, str] = {}  # result id → "pending" | "failed" | "written"
        self._ack_to: dict[str, tuple[str, str]] = {}  # result id → (site, reader) of its ack
        self._changed = threading.Condition()
        self._v5 = broker.protocol == "5"
        self.persistent = name is not None
        label = site.replace("+", "all")
        client_id = f"uketsuke-terminal-{label}-{name}" if name else f"uketsuke-terminal-{label}-{uuid.uuid4().hex[:8]}"
        kwargs = {} if self._v5 else {"clean_session": not self.persistent}
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311, **kwargs)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        client_credentials(broker).apply(self._client)  # TLS + our certificate; a ConfigError line if wrong
        self._trouble = ConnectTrouble(broker)  # fed on paho's thread only
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        watch_errors(self._client, self._trouble.log_error)  # paho's thread, like every callback here
        self._client.on_message = self._on_message
        self._connected = threading.Event()

    def start(self) -> None:
        if self.files is not None:  # first: an unwritable folder is an error before anything is acked
            self.files.start()
        options = {}
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.MaximumPacketSize = 2 * MAX_RESULT_BYTES
            if self.persistent:
                properties.SessionExpiryInterval = SESSION_EXPIRY_S
            options = {"clean_start": not self.persistent, "properties": properties}
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s, **options)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        if self.files is not None:
            self.files.stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_for(self, predicate: Callable[[TerminalView], bool], timeout_s: float) -> bool:
        """Block until ``predicate(view)`` holds (tests, scripted demos)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.view), timeout_s)

    def locked(self):
        """``with terminal.locked():`` read the view while no message changes it."""
        return self._changed

    def send_command(self, site: str, reader: str, name: CommandName, *, staff: str = "terminal",
                     **args) -> Command:
        """Publish a staff command (any thread); ``staff`` names who sent it (kept with a visual OK)."""
        command = Command(cmd=name, args=args)
        if command.cmd == CommandName.VISUAL_OK:  # recorded before it leaves: no result can overtake it
            with self._changed:
                self.visual.sent(site, reader, staff, command.id)
        properties = None
        if self._v5:  # MQTT 5 request/response; the payload id alone serves 3.1.1
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = topic(site, reader, "reply")
            properties.CorrelationData = command.id.encode()
        self._client.publish(topic(site, reader, "cmd"), command.to_json(), qos=1, properties=properties)
        return command

    def _say(self, line: str) -> None:
        if self.printer:
            self.printer(line)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._trouble.answered()
        if reason_code.is_failure:
            log.warning("broker refused the terminal: %s", reason_code)
            self._broker_problem(f"the broker refused the terminal: {reason_code}")
            return
        self._trouble.connected()
        if self.view.broker_problem is not None:
            self._broker_problem(None)
        for leaf in list(_MODELS) + (list(_REQUESTS) if self.serves_requests else []):
            client.subscribe(f"{TOPIC_ROOT}/{self.site}/+/{leaf}", qos=1)
        self._connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho passes no error: it calls this inside its ``except OSError`` (see firmware.link.mqtt).
        self._broker_problem(self._trouble.connect_failed(sys.exc_info()[1]), only_if_new=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._broker_problem(self._trouble.disconnected(), only_if_new=True)  # closed before CONNACK?

    def _broker_problem(self, line: str | None, only_if_new: bool = False) -> None:
        """A TLS or connection problem for the console and the view (None: connected again)."""
        if only_if_new and line is None:
            return  # nothing new: paho retries with backoff, the line was said already
        with self._changed:
            self.view.broker_problem = line
            self._changed.notify_all()
        self._say(f"[broker] {line}" if line else "[broker] connected")

    def _on_message(self, client, userdata, message) -> None:
        """paho's thread: limits, parse, record, answer. No lock of ours is held across a publish."""
        parts = message.topic.split("/")
        leaf = parts[-1]
        model = _MODELS.get(leaf) or (_REQUESTS.get(leaf) if self.serves_requests else None)
        if model is None or len(parts) != 5:
            return
        site, reader = parts[2][:64], parts[3][:64]
        try:
            parsed = parse(model, message.payload, _LIMITS.get(leaf, MAX_SMALL_BYTES))
        except MessageError as exc:
            parsed, error = None, exc
        outgoing: list[tuple[str, bytes]] = []
        with self._changed:  # the view changes under this lock only; paho is called after it
            if parsed is None:
                self.view.errors.append(f"{site}/{reader}/{leaf}: {error}")
                line = f"[{site}/{reader}] rejected a malformed {leaf}: {error}"
                ack = None
            elif leaf in _REQUESTS:
                ack = None
                leaf_out, payload, line = self._answer_request(site, reader, parsed)
                outgoing.append((leaf_out, payload))
            else:
                ack, line = self._record(site, reader, parsed)
                if isinstance(parsed, Reply):
                    command_id = self._correlate(parsed, getattr(message.properties, "CorrelationData", None))
                    if command_id:
                        self.visual.answered(command_id, parsed)  # an OK the kiosk did not take is dropped
            self._changed.notify_all()
        if line:
            self._say(line)
        for leaf_out, payload in outgoing:
            self._client.publish(topic(site, reader, leaf_out), payload, qos=1)
        if ack is not None:
            self._client.publish(topic(site, reader, "ack"), ack.to_json(), qos=1)
            with self._changed:
                self.view.acknowledged.add(ack.id)
                self._changed.notify_all()

    def _answer_request(self, site: str, reader: str, request) -> tuple[str, bytes, str | None]:
        """A challenge offer, context or registration answer (under ``_changed``): (leaf, payload, line)."""
        if isinstance(request, ChallengeRequest):
            challenges = self.challenges.issue(site, reader, request.count)
            self.view.challenges_issued += len(challenges)
            return "challenge", ChallengeOffer(request_id=request.id, challenges=challenges).to_json(), None
        cert_der = base64.b64decode(request.cert_der_b64)
        if isinstance(request, ContextRequest):
            context = self.registry.context(cert_der)
            answer = ContextAnswer(request_id=request.id, session_id=request.session_id,
                                   registered=context.registered, previous_consent_at=context.previous_consent_at,
                                   previous_consent=context.previous_consent, eligibility=context.eligibility)
            self.view.contexts.append(answer)
            return "context", answer.to_json(), None
        ok, reason = self.registry.register(cert_der, now_utc())
        answer = RegistrationAnswer(request_id=request.id, session_id=request.session_id, ok=ok, reason=reason)
        self.view.registrations.append(answer)
        line = f"[{site}/{reader}] insurance-use registration: {'done' if ok else 'refused'}"
        return "registration", answer.to_json(), line + (f" ({reason})" if reason else "")

    def _correlate(self, reply: Reply, correlation: bytes | None) -> str:
        """File a reply under its command's id (returned): the MQTT 5 correlation data if it is one of
        ours, else ``id``."""
        command = reply.id
        if correlation:
            try:
                command = Command(cmd=CommandName.PING, id=correlation.decode()).id  # checks the id's form
            except (UnicodeDecodeError, ValueError):
                pass
        if command:
            self.view.replies_by_command[command] = reply
        return command

    def _queue_face_file(self, site: str, reader: str, result: ResultMessage) -> None:
        """Hand a verified result to the file writer (under ``_changed``); its ack waits for the file."""
        self._file_state[result.id] = "pending"
        self._ack_to[result.id] = (site, reader)
        answer = self.registry.answer(base64.b64decode(result.cert_der_b64))
        self.files.submit(FaceJob(result, answer, self._face_file_done))

    def _face_file_done(self, result_id: str, name: str | None, error: Exception | None) -> None:
        """The writer thread: the file is in place (ack now) or not (no ack: the kiosk resends)."""
        with self._changed:
            site, reader = self._ack_to[result_id]
            ack = self.view.answers[result_id]
            if name is None:
                self._file_state[result_id] = "failed"
                self.view.file_errors.append(f"{result_id}: {error}"[:300])
                line = f"[{site}/{reader}] face file NOT written, result not acknowledged: {error}"
            else:
                self._file_state[result_id] = "written"
                self.view.face_files[result_id] = name
                line = f"[{site}/{reader}] face file {name}"
            self._changed.notify_all()
        self._say(line)
        if name is not None:
            self._client.publish(topic(site, reader, "ack"), ack.to_json(), qos=1)
            with self._changed:
                self.view.acknowledged.add(result_id)
                self._changed.notify_all()

    def _confirm_visual(self, result: ResultMessage) -> VisualOk | None:
        """A visual result (under ``_changed``): spend the staff OK that confirms it, if there is one."""
        if result.method != Method.VISUAL:
            return None
        confirmed = self.visual.spend(result)
        self.view.visual_checks[result.id] = confirmed
        return confirmed

    def _record(self, site: str, reader: str, parsed) -> tuple[AckMessage | None, str | None]:
        """Keep what arrived (under ``_changed``): the ack to send, and a line to print."""
        if isinstance(parsed, ResultMessage):
            if (parsed.site, parsed.reader) != (site, reader):
                self.view.errors.append(f"{site}/{reader}/result: names another reader")
                return None, f"[{site}/{reader}] rejected a result that names another reader"
            if parsed.id in self._seen_ids:  # a resend: handled already, but acknowledged again
                state = self._file_state.get(parsed.id)
                if state == "pending":  # the writer thread acknowledges it once the file is there
                    return None, None
                if state == "failed":  # try the file again; its ack follows the write
                    self._queue_face_file(site, reader, parsed)
                    return None, None
                return self.view.answers[parsed.id], None
            self._seen_ids.add(parsed.id)
            try:
                verification = verify_result(parsed, self.challenges, self.issuer_keys, anchors=self.trust_anchors,
                                             grace_rule=self.grace_rule, min_face_threshold=self.min_face_threshold,
                                             revoked=self.revoked)
            except Exception:  # never on paho's thread: the result is still stored and acknowledged
                log.exception("verifying result %s failed", parsed.id)
                verification = Verification(False, False, ("the terminal could not check the proof",))
            eligibility = self.registry.eligibility(base64.b64decode(parsed.cert_der_b64))
            problems, confirmed = list(verification.problems), self._confirm_visual(parsed)
            if parsed.method == Method.VISUAL and confirmed is None:
                problems.append(UNCONFIRMED)
            ack = AckMessage(id=parsed.id, verified=verification.verified,
                             problems=[safe_text(p) for p in problems][:20], eligibility=eligibility)
            self.view.results.append(parsed)
            self.view.verifications[parsed.id] = verification
            self.view.answers[parsed.id] = ack
            line = describe_result(parsed) + describe_answer(ack)
            if confirmed is not None:
                line += f" visual check confirmed by {confirmed.staff}"
            if self.files is not None and (verification.verified is True or confirmed is not None):
                self._queue_face_file(site, reader, parsed)
                return None, line
            return ack, line
        line = None
        if isinstance(parsed, StatusMessage):
            key = f"{site}/{reader}"
            if self.view.statuses.get(key) != parsed.state or self.view.problems.get(key) != parsed.problems:
                problems = f" problems: {'; '.join(parsed.problems)}" if parsed.problems else ""
                line = f"[{key}] {parsed.state}{problems}"
            self.view.statuses[key] = parsed.state
            self.view.problems[key] = list(parsed.problems)
        elif isinstance(parsed, EventMessage):
            self.view.events.append(parsed)
            self.view.recent_events.setdefault(f"{site}/{reader}", deque(maxlen=RECENT_EVENTS)).append(parsed)
        elif isinstance(parsed, Reply):
            self.view.replies.append(parsed)
        return None, line
