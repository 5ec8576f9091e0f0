"""The kiosk's side of the link: paho-mqtt, the durable outbox, commands in, replies out.

Threads (docs/design.md, "Runtime"):

- paho's network thread runs our ``_on_*`` callbacks while it holds paho's own locks, so each
  callback only puts a tuple on a queue and returns. No lock of ours is ever held across a paho
  call, and no disk I/O happens on paho's thread.
- ``link-sender`` owns the outbox and everything about delivery: it writes each result before
  sending it, resends unacknowledged results after a reconnect and then with backoff, deletes a
  result only when the terminal's ``ack`` names it, parks a result the broker refuses for good,
  publishes status and events, and notices another kiosk on our reader id.
- ``link-commands`` checks, parses and runs the terminal's commands and publishes the replies, so a
  slow command never delays delivery and a hostile one never reaches paho's thread.
- ``link-answers`` parses the terminal's answers (challenge offers, context and registration
  answers) and calls ``on_context`` / ``on_registration`` / ``on_answer`` (the last for each result's
  first ack, handed over by the sender). Callbacks run there, with no lock of ours held.

Replies: the payload's ``id`` is the command's (works over MQTT 3.1.1). Over MQTT 5 a command may
also name a ``ResponseTopic`` and carry ``CorrelationData``: the reply then goes to that topic with
the same correlation data, if the topic is our own ``reply`` topic or one level under it
(``…/reply/<token>``, so a requester can listen on its own); any other topic is ignored (the reply
goes to ``…/reply``): a sender must not make a reader publish where it likes. Correlation data
longer than ``MAX_CORRELATION_BYTES`` is not echoed.

Challenges: the kiosk keeps a small pool of the terminal's single-use challenges so that a tap
never waits for a round trip. ``take_challenge`` pops one (never the same twice, never one past its
expiry) and the sender asks the terminal for more (``challenge_request``) whenever the pool is short,
after every (re)connect and every few seconds while it stays short. Expiry is measured on our
monotonic clock from the offer's own ``ts`` → ``expires`` span, so a kiosk clock that is off does not
keep stale challenges.

TLS and the device certificate are set up by :mod:`firmware.link.tls` (the terminal uses the same):
a mistake in ``[broker]`` is a ConfigError when the link is built, and a handshake the broker or we
refuse is one ``broker`` problem, said once per cause while paho retries with backoff.

paho stays inside this package (nothing above sees its return codes). A broker that is down at
start or restarts later only delays delivery; results wait in the outbox (or, while the outbox
cannot be written, in memory, with a blocking problem reported) and go out on reconnect.
"""

from __future__ import annotations

import base64
import logging
import queue
import re
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from firmware.config import Broker
from firmware.errors import CommandRefused, MessageError, OutboxError
from firmware.link.limits import MAX_COMMAND_BYTES, MAX_CORRELATION_BYTES, MAX_RESULT_BYTES, MAX_SMALL_BYTES
from firmware.link.outbox import Outbox
from firmware.link.schemas import (
    AckMessage,
    Challenge,
    ChallengeOffer,
    ChallengeRequest,
    Command,
    ContextAnswer,
    ContextRequest,
    EventMessage,
    RegistrationAnswer,
    RegistrationRequest,
    Reply,
    ResultMessage,
    StatusMessage,
    command_id,
    event_code,
    parse,
    safe_text,
    topic,
)
from firmware.link.tls import ConnectTrouble, client_credentials, reader_identity, watch_errors
from firmware.supervisor import Supervised

log = logging.getLogger(__name__)

CommandHandler = Callable[[Command], dict[str, Any] | None]
#: ``report(key, text, blocking)`` sets a staff-visible problem; ``text=None`` clears it.
Reporter = Callable[[str, str | None, bool], None]
#: ``on_context(session_id, answer)``, ``on_registration(session_id, answer)``, ``on_answer(result_id, ack)``.
ContextCallback = Callable[[str, ContextAnswer], None]
RegistrationCallback = Callable[[str, RegistrationAnswer], None]
AnswerCallback = Callable[[str, AckMessage], None]

#: Topics the kiosk reads: the terminal's commands, acks, answers and (for duplicate ids) status.
_SUBSCRIBED = ("cmd", "ack", "status", "challenge", "context", "registration")
_ANSWER_LEAVES = ("challenge", "context", "registration")

#: PUBACK reason codes that will not change on a resend: the result is parked, not retried.
_PERMANENT_REFUSALS = {0x80, 0x83, 0x87, 0x90, 0x93, 0x95, 0x99}
_STOP = ("stop",)
#: The last level of a response topic under our ``reply`` topic (``…/reply/<token>``).
_RESPONSE_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KioskLink:
    """Publishes status, events and results for one reader; receives acks and the terminal's commands."""

    #: First resend of an unacknowledged result after this long; doubles up to ``resend_max_s``.
    resend_min_s = 2.0
    resend_max_s = 30.0
    #: Retry of an outbox write that failed (read-only or full SD card), doubling up to 30 s.
    write_retry_min_s = 1.0
    #: Commands waiting beyond this many are dropped (a flood must not grow memory).
    max_queued_commands = 32
    #: Terminal answers waiting beyond this many are dropped (likewise).
    max_queued_answers = 64
    #: Challenges kept ready; the pool is refilled whenever it is shorter.
    pool_size = 4
    #: A challenge counts as expired this long before the terminal's expiry (at most a quarter of its life).
    challenge_margin_s = 10.0
    #: While the pool stays short, ask again this often (an offer may be lost; expired ones are pruned).
    pool_check_s = 5.0
    #: A context or registration request not sent within this long (broker away) is dropped.
    request_ttl_s = 30.0
    #: Context/registration requests awaiting an answer beyond this many: the oldest is forgotten.
    max_pending_requests = 32

    def __init__(self, site: str, reader: str, broker: Broker, outbox: Outbox,
                 on_command: CommandHandler | None = None, software: str = "", *,
                 report: Reporter | None = None, on_context: ContextCallback | None = None,
                 on_registration: RegistrationCallback | None = None, on_answer: AnswerCallback | None = None):
        self.site, self.reader, self.broker, self.outbox = site, reader, broker, outbox
        self.on_command = on_command
        self.software = software
        self.report = report or (lambda key, text, blocking: None)
        # Called on the link-answers thread (set here or later as attributes):
        self.on_context = on_context
        self.on_registration = on_registration
        self.on_answer = on_answer
        #: Random per process: the client id and the status messages carry it (duplicate reader ids).
        self.instance = secrets.token_hex(4)
        self._work: queue.Queue = queue.Queue()
        self._commands: queue.Queue = queue.Queue(maxsize=self.max_queued_commands)
        self._connected = threading.Event()
        self._stopping = False
        self._flushed = threading.Condition()
        self._outstanding = 0  # results handed to us and not yet acknowledged or parked
        self.acknowledged = 0  # results the terminal acknowledged since start
        self._acked_recent: deque[str] = deque(maxlen=10_000)
        self._acked_lock = threading.Lock()  # guards _acked_recent only; never held across a paho call
        self.dropped_commands = 0
        self.dropped_answers = 0
        self._answers: queue.Queue = queue.Queue()  # bounded by max_queued_answers at paho's side
        # The challenge pool (take_challenge from any thread; offers on link-answers; asks on the sender):
        self._pool_lock = threading.Lock()  # never held across a paho call or a callback
        self._pool: deque[tuple[Challenge, float]] = deque()  # (challenge, monotonic deadline)
        self._seen_challenges: set[str] = set()  # every id ever pooled: none is handed out twice
        self._seen_order: deque[str] = deque()
        self._asked: dict[str, float] = {}  # challenge request id → when asked (monotonic)
        # Context/registration requests awaiting an answer: request id → (leaf, session id, when).
        self._requests_lock = threading.Lock()
        self._requests: dict[str, tuple[str, str, float]] = {}
        # Owned by the sender thread only:
        self._results: dict[str, tuple[str, bytes]] = {}  # outstanding id → (topic, payload)
        self._unwritten: set[str] = set()  # ids not yet in the outbox (write failed)
        self._due: dict[str, float] = {}  # id → when to send it next
        self._backoff: dict[str, float] = {}
        self._inflight: dict[int, str] = {}  # paho mid → id
        self._write_retry_at: float | None = None
        self._write_backoff = self.write_retry_min_s
        self._problems: list[str] = []
        self._duplicate_of: str | None = None
        self._subscribe_mid: int | None = None
        self._held: list[tuple[str, bytes, float]] = []  # requests waiting for the broker: (topic, payload, when)
        self._pool_check_at: float | None = None
        self._threads: list[Supervised] = []

        self._v5 = broker.protocol == "5"
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"uketsuke-{site}-{reader}-{self.instance}",
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
        )
        self._client.will_set(self.topic("status"), self._status("offline").to_json(), qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        # TLS, the device certificate (issued to this reader) and the password: a ConfigError line if wrong.
        client_credentials(broker, expected_identity=reader_identity(site, reader)).apply(self._client)
        self._trouble = ConnectTrouble(broker)  # the sender's: why connecting fails, said once per cause
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        watch_errors(self._client, lambda text: self._work.put(("paho-error", text)))  # only queues
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    def topic(self, leaf: str) -> str:
        return topic(self.site, self.reader, leaf)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Results not yet acknowledged by the terminal (in the outbox or, if it failed, in memory)."""
        with self._flushed:
            return self._outstanding

    def acknowledged_among(self, ids) -> int:
        """How many of ``ids`` the terminal has acknowledged (among the latest 10,000 acks)."""
        with self._acked_lock:
            recent = set(self._acked_recent)
        return sum(1 for message_id in ids if message_id in recent)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Load unacknowledged results, start our threads and connect in the background."""
        if self.outbox.open_error is not None:
            self.report("outbox-write", f"results cannot be stored: {self.outbox.open_error}", True)
            self._write_retry_at = time.monotonic() + self._write_backoff
        if self.outbox.moved_aside is not None:
            self.report("outbox", f"the outbox was corrupt and was moved to {self.outbox.moved_aside.name}; "
                                  "results in it can be recovered by hand", False)
        try:
            pending = self.outbox.pending()
        except OutboxError as exc:
            pending = []
            self.report("outbox-write", f"results cannot be stored: {exc}", True)
            self._write_retry_at = time.monotonic() + self._write_backoff
        for row in pending:
            self._results[row.id] = (row.topic, row.payload)
            self._due[row.id] = 0.0
        with self._flushed:
            self._outstanding += len(pending)
        for name, loop in (("link-sender", self._sender_loop), ("link-commands", self._command_loop),
                           ("link-answers", self._answer_loop)):
            thread = Supervised(name, lambda _stopping, loop=loop: loop(), report=self._thread_died,
                                max_backoff_s=10.0)
            thread.start()
            self._threads.append(thread)
        properties = None
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)
            # mosquitto then never delivers more than this to us: a 40 MB command is dropped at the broker.
            properties.MaximumPacketSize = 2 * MAX_COMMAND_BYTES + MAX_SMALL_BYTES
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                                   properties=properties)
        self._client.loop_start()

    def stop(self) -> None:
        """Store what is queued, say goodbye (retained offline status), disconnect, end our threads.

        Pending results stay in the outbox for the next start.
        """
        self._stopping = True
        for thread in self._threads:  # before the sentinels: a loop that returns is not run again
            thread.stopping.set()
        self._work.put(_STOP)
        self._commands.put(None)
        self._answers.put(None)
        for thread in self._threads:
            thread.stop(timeout_s=10)
        self._threads.clear()
        if self.connected:
            info = self._client.publish(self.topic("status"), self._status("offline").to_json(), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def wait_flushed(self, timeout_s: float) -> bool:
        """Block until every result handed to the link was acknowledged by the terminal (or parked)."""
        with self._flushed:
            return self._flushed.wait_for(lambda: self._outstanding == 0, timeout_s)

    # ------------------------------------------------------------------ from any thread (never blocks)

    def publish_result(self, result: ResultMessage) -> None:
        """Hand a result over: the sender stores it durably, then sends it until the terminal acks it."""
        with self._flushed:
            self._outstanding += 1
        self._work.put(("result", result.id, self.topic("result"), result.to_json()))

    def publish_event(self, state: str, detail: str = "") -> None:
        """Best-effort progress for staff screens; dropped while offline."""
        state, detail = event_code(state, detail)  # codes only: what does not fit goes as "other"
        event = EventMessage(reader=self.reader, state=state, detail=detail)
        self._work.put(("event", event.to_json()))

    def publish_status(self, problems: list[str]) -> None:
        """The retained status, now with these staff-visible problem lines."""
        self._work.put(("problems", list(problems)[:20]))

    def take_challenge(self) -> Challenge | None:
        """A single-use challenge from the pool, or None if it is empty (the result then says ``fresh: false``).

        Never blocks; never returns a challenge twice or one past its expiry. Asks for a refill.
        """
        now = time.monotonic()
        taken = None
        with self._pool_lock:
            while self._pool:
                challenge, deadline = self._pool.popleft()
                if deadline > now:
                    taken = challenge
                    break
        self._work.put(("refill",))
        return taken

    @property
    def challenges_ready(self) -> int:
        """Unexpired challenges in the pool."""
        now = time.monotonic()
        with self._pool_lock:
            return sum(1 for _, deadline in self._pool if deadline > now)

    def request_context(self, session_id: str, cert_der: bytes, token_kind) -> str:
        """Ask the terminal what it knows of this certificate; ``on_context(session_id, answer)`` follows.

        Never blocks. Returns the request id. No answer comes if the terminal is away (the flow's
        own timeout decides); a request that could not be sent within ``request_ttl_s`` is dropped.
        """
        kind = str(getattr(token_kind, "value", token_kind))
        request = ContextRequest(session_id=session_id, cert_der_b64=base64.b64encode(bytes(cert_der)).decode(),
                                 token_kind=kind)
        return self._request("context", request.id, session_id, request.to_json())

    def request_registration(self, session_id: str, cert_der: bytes) -> str:
        """Ask the terminal to register this certificate for insurance use; ``on_registration`` follows."""
        request = RegistrationRequest(session_id=session_id, cert_der_b64=base64.b64encode(bytes(cert_der)).decode())
        return self._request("registration", request.id, session_id, request.to_json())

    def _request(self, leaf: str, request_id: str, session_id: str, payload: bytes) -> str:
        now = time.monotonic()
        with self._requests_lock:
            for stale in [rid for rid, (_, _, at) in self._requests.items() if now - at > 4 * self.request_ttl_s]:
                del self._requests[stale]
            while len(self._requests) >= self.max_pending_requests:
                del self._requests[next(iter(self._requests))]
            self._requests[request_id] = (leaf, session_id, now)
        self._work.put(("request", self.topic(f"{leaf}_request"), payload, now))
        return request_id

    # ------------------------------------------------------------------ paho callbacks (network thread)
    # Each only queues: paho holds its own locks while it calls these.

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._work.put(("connect", reason_code.is_failure, str(reason_code)))

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its ``except OSError`` around the connect attempt and passes no
        # error: the exception being handled is the only place the reason (a refused TLS handshake,
        # a refused TCP connection) is found.
        self._work.put(("connect-fail", sys.exc_info()[1]))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._work.put(("suback", mid))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._work.put(("disconnect", str(reason_code), getattr(reason_code, "value", 0)))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._work.put(("puback", mid, getattr(reason_code, "value", 0), str(reason_code)))

    def _on_message(self, client, userdata, message) -> None:
        leaf = message.topic.rsplit("/", 1)[-1]
        payload = message.payload
        if leaf == "cmd":
            properties = getattr(message, "properties", None)  # MQTT 5 only
            item = (payload if len(payload) <= MAX_COMMAND_BYTES else None, len(payload), bool(message.retain),
                    getattr(properties, "ResponseTopic", None), getattr(properties, "CorrelationData", None))
            try:
                self._commands.put_nowait(item)
            except queue.Full:
                self.dropped_commands += 1
        elif leaf in ("ack", "status") and len(payload) <= MAX_SMALL_BYTES:
            self._work.put((leaf, payload, bool(message.retain)))
        elif leaf in _ANSWER_LEAVES and len(payload) <= MAX_SMALL_BYTES and not message.retain:
            if self._answers.qsize() >= self.max_queued_answers:
                self.dropped_answers += 1
            else:
                self._answers.put((leaf, payload, time.monotonic()))

    # ------------------------------------------------------------------ threads

    def _thread_died(self, name: str, error: BaseException | None) -> None:
        """A link thread's loop raised (the Supervised wrapper logged it and runs the loop again)."""
        if error is not None:
            self.report(name, f"crashed ({type(error).__name__}); restarted", False)

    def _sender_loop(self) -> None:
        while True:
            timeout = self._next_wakeup()
            try:
                item = self._work.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item == _STOP:
                self._drain_before_stop()
                return
            if item is not None:
                try:
                    self._handle(item)
                except Exception:
                    log.exception("link sender: %s failed", item[0])
            self._retry_writes()
            self._send_due()
            if self._pool_check_at is not None and time.monotonic() >= self._pool_check_at:
                self._refill()

    def _drain_before_stop(self) -> None:
        """Store every result still queued (no sending: we are going away)."""
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item[0] == "result":
                self._store(item[1], item[2], item[3])
        self._retry_writes(force=True)

    def _next_wakeup(self) -> float | None:
        moments = []
        if self._write_retry_at is not None:
            moments.append(self._write_retry_at)
        if self.connected and self._due:
            moments.append(min(self._due.values()))
        if self.connected and self._pool_check_at is not None:
            moments.append(self._pool_check_at)
        if not moments:
            return None
        return max(0.0, min(moments) - time.monotonic())

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "result":
            self._store(item[1], item[2], item[3])
            self._due[item[1]] = 0.0
        elif kind == "connect":
            self._connected_now(item[1], item[2])
        elif kind == "connect-fail":
            self._connect_trouble(self._trouble.connect_failed(item[1]))
        elif kind == "paho-error":
            self._trouble.log_error(item[1])
        elif kind == "suback":
            self._subscribed(item[1])
        elif kind == "disconnect":
            self._disconnected(item[1], item[2])
        elif kind == "puback":
            self._puback(item[1], item[2], item[3])
        elif kind == "ack":
            self._ack(item[1])
        elif kind == "problems":
            self._problems = item[1]
            self._publish_status()
        elif kind == "status":
            self._other_status(item[1], item[2])
        elif kind == "event":
            if self.connected:
                self._client.publish(self.topic("event"), item[1], qos=0)
        elif kind == "request":
            self._send_request(item[1], item[2], item[3])
        elif kind == "refill":
            self._refill()

    # -- requests and the challenge pool (sender thread)

    def _send_request(self, topic_name: str, payload: bytes, created: float) -> None:
        if time.monotonic() - created > self.request_ttl_s:
            log.info("a request to the terminal was dropped: not sent within %.0f s", self.request_ttl_s)
            return
        if self.connected:
            info = self._client.publish(topic_name, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                return
        self._held = self._held[-15:] + [(topic_name, payload, created)]

    def _refill(self) -> None:
        """Ask for challenges if the pool is short and no recent ask is outstanding; reschedule the check."""
        now = time.monotonic()
        if not self.connected:
            self._pool_check_at = None  # the next subscription refills
            return
        with self._pool_lock:
            self._pool = deque((c, d) for c, d in self._pool if d > now)
            short = self.pool_size - len(self._pool)
            for old in [rid for rid, at in self._asked.items() if now - at > self.pool_check_s]:
                del self._asked[old]
            ask = short > 0 and not self._asked
            if ask:
                request = ChallengeRequest(count=min(short, 8))
                self._asked[request.id] = now
        self._pool_check_at = now + self.pool_check_s
        if ask:
            self._client.publish(self.topic("challenge_request"), request.to_json(), qos=1)

    # -- results

    def _store(self, message_id: str, topic_name: str, payload: bytes) -> None:
        self._results[message_id] = (topic_name, payload)
        try:
            self.outbox.put(message_id, topic_name, payload)
        except OutboxError as exc:
            log.error("result %s kept in memory: %s", message_id, exc)
            self._unwritten.add(message_id)
            if self._write_retry_at is None:
                self._write_backoff = self.write_retry_min_s
                self._write_retry_at = time.monotonic() + self._write_backoff
            self.report("outbox-write", f"results cannot be stored ({exc}); {len(self._unwritten)} kept in memory",
                        True)

    def _retry_writes(self, force: bool = False) -> None:
        """Write what is kept in memory; with nothing left to write, probe until the disk is back.

        The problem clears only on a successful write, so a kiosk whose last unwritten result was
        acknowledged stays out of service while its outbox still cannot be written.
        """
        if self._write_retry_at is None or (not force and time.monotonic() < self._write_retry_at):
            return
        try:
            for message_id in sorted(self._unwritten):
                topic_name, payload = self._results[message_id]
                self.outbox.put(message_id, topic_name, payload)
                self._unwritten.discard(message_id)
            self.outbox.check_writable()
        except OutboxError as exc:
            self._write_backoff = min(self._write_backoff * 2, 30.0)
            self._write_retry_at = time.monotonic() + self._write_backoff
            log.warning("outbox still cannot be written (%s); again in %.0f s", exc, self._write_backoff)
            return
        self._write_retry_at, self._write_backoff = None, self.write_retry_min_s
        log.info("outbox writable again: every result is stored")
        self.report("outbox-write", None, True)

    def _send_due(self) -> None:
        if not self.connected:
            return
        now = time.monotonic()
        for message_id in [m for m, at in self._due.items() if at <= now]:
            topic_name, payload = self._results[message_id]
            if len(payload) > MAX_RESULT_BYTES:
                # The broker would drop the connection (max_packet_size) and paho resend it on every
                # reconnect: a loop no resend can fix. Our results never get this big; an old row can.
                self._park(message_id, f"{len(payload)} bytes, over the link's {MAX_RESULT_BYTES}-byte limit")
                continue
            info = self._client.publish(topic_name, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.info("result %s waits: %s", message_id, mqtt.error_string(info.rc))
                return  # not connected after all: the reconnect resends everything
            self._inflight[info.mid] = message_id
            backoff = self._backoff.get(message_id, self.resend_min_s)
            self._due[message_id] = now + backoff
            self._backoff[message_id] = min(backoff * 2, self.resend_max_s)
            if message_id not in self._unwritten:
                try:
                    self.outbox.mark_attempt(message_id)
                except OutboxError:
                    pass  # only a counter; the write problem is reported by _store

    def _puback(self, mid: int, code: int, text: str) -> None:
        message_id = self._inflight.pop(mid, None)
        if message_id is None or message_id not in self._results:
            return
        if code in _PERMANENT_REFUSALS:
            self._park(message_id, text, by_broker=True)
        elif code >= 0x80:
            log.warning("broker did not take result %s (%s); it will be resent", message_id, text)

    def _park(self, message_id: str, why: str, by_broker: bool = False) -> None:
        """Keep a result that no resend can deliver in the outbox, marked and reported, and stop sending it."""
        log.error("result %s %s (%s): parked", message_id, "refused by the broker" if by_broker else "not sendable",
                  why)
        try:
            self.outbox.park(message_id, why)
        except OutboxError as exc:
            log.error("could not mark result %s parked: %s", message_id, exc)
        self._forget(message_id)
        what = f"the broker refused a result ({why})" if by_broker else f"a result cannot be sent ({why})"
        self.report("result-parked", f"{what}; it is kept in the outbox, not resent", False)

    def _ack(self, payload: bytes) -> None:
        try:
            ack = parse(AckMessage, payload)
        except MessageError as exc:
            log.warning("bad ack: %s", exc)
            return
        if ack.id not in self._results:
            return  # a second ack for a resend, or another kiosk's (same reader id)
        try:
            self.outbox.remove(ack.id)
        except OutboxError as exc:  # it will be resent after a restart; the terminal dedupes
            log.error("acknowledged result %s could not be deleted: %s", ack.id, exc)
        self.acknowledged += 1
        with self._acked_lock:
            self._acked_recent.append(ack.id)
        self._forget(ack.id)
        log.info("result %s acknowledged by the terminal (verified=%s, eligibility=%s)", ack.id, ack.verified,
                 ack.eligibility.value if ack.eligibility else None)
        self._answers.put(("answer", ack, 0.0))  # on_answer runs on link-answers, not here

    def _forget(self, message_id: str) -> None:
        self._results.pop(message_id, None)
        self._due.pop(message_id, None)
        self._backoff.pop(message_id, None)
        self._unwritten.discard(message_id)
        with self._flushed:
            self._outstanding -= 1
            self._flushed.notify_all()

    # -- connection and presence

    def _status(self, state: str) -> StatusMessage:
        problems = [safe_text(line) for line in self._problems] if state == "online" else []
        return StatusMessage(reader=self.reader, state=state, software=self.software, instance=self.instance,
                             problems=problems)

    def _publish_status(self) -> None:
        if self.connected:
            self._client.publish(self.topic("status"), self._status("online").to_json(), qos=1, retain=True)

    def _connected_now(self, failed: bool, reason: str) -> None:
        self._trouble.answered()
        if failed:
            log.warning("broker %s:%d refused the connection: %s", self.broker.host, self.broker.port, reason)
            self.report("broker", f"the broker refused the connection: {reason}", False)
            return
        log.info("connected to broker %s:%d", self.broker.host, self.broker.port)
        self._trouble.connected()
        self.report("broker", None, False)
        # "Connected" only once the broker confirms our subscriptions: before that, a command or an
        # ack sent to us would be dropped, and our own status must not be missed for duplicate ids.
        result, self._subscribe_mid = self._client.subscribe([(self.topic(leaf), 1) for leaf in _SUBSCRIBED])
        if result != mqtt.MQTT_ERR_SUCCESS:
            log.warning("could not subscribe: %s", mqtt.error_string(result))

    def _subscribed(self, mid: int) -> None:
        if mid != self._subscribe_mid:
            return
        self._connected.set()
        self._publish_status()
        self._inflight.clear()
        for message_id in self._results:  # everything unacknowledged goes again, backoff from the start
            self._due[message_id] = 0.0
            self._backoff.pop(message_id, None)
        held, self._held = self._held, []
        for topic_name, payload, created in held:
            self._send_request(topic_name, payload, created)
        with self._pool_lock:
            self._asked.clear()  # an ask sent before the break may be lost
        self._refill()

    def _connect_trouble(self, line: str | None) -> None:
        """A TLS problem, new since the last report (paho retries with backoff; the line is said once)."""
        if line is not None and not self._stopping:
            self.report("broker", line, False)

    def _disconnected(self, reason: str, code: int) -> None:
        # closed before CONNACK: the broker refused our certificate, or no TLS there
        self._connect_trouble(self._trouble.disconnected())
        if self._connected.is_set() and not self._stopping:
            if code == 0x8E:
                log.error("the broker dropped us: another client connected with our client id")
            else:
                log.warning("lost the broker (%s); results wait in the outbox", reason)
        self._connected.clear()
        self._inflight.clear()

    def _other_status(self, payload: bytes, retained: bool) -> None:
        """Another kiosk on our reader id says it is online (live, not a retained leftover)."""
        try:
            status = parse(StatusMessage, payload)
        except MessageError:
            return
        if not status.instance or status.instance == self.instance:
            return
        if status.state == "online" and not retained:
            if self._duplicate_of != status.instance:
                self._duplicate_of = status.instance
                log.error("another kiosk (instance %s) uses reader id %s/%s", status.instance, self.site, self.reader)
                self.report("reader-id", f"another kiosk uses reader id {self.site}/{self.reader}: "
                                         "give each reader its own reader_id", False)
                self._publish_status()  # so that the other one hears of us too
        elif status.state == "offline" and status.instance == self._duplicate_of:
            self._duplicate_of = None
            self.report("reader-id", None, False)
            self._publish_status()  # its offline status replaced ours as the retained one

    # -- answers (link-answers thread)

    def _answer_loop(self) -> None:
        while True:
            item = self._answers.get()
            if item is None:
                return
            kind, payload, received = item
            try:
                if kind == "answer":
                    self._deliver(self.on_answer, payload.id, payload)
                elif kind == "challenge":
                    self._offer(payload, received)
                else:
                    self._answered(kind, payload)
            except Exception:
                log.exception("a terminal answer (%s) could not be handled", kind)

    def _offer(self, payload: bytes, received: float) -> None:
        try:
            offer = parse(ChallengeOffer, payload)
        except MessageError as exc:
            log.warning("bad challenge offer: %s", exc)
            return
        added = 0
        with self._pool_lock:
            if self._asked.pop(offer.request_id, None) is None:
                return  # not an answer to our latest ask (an old one, or someone else's)
            for challenge in offer.challenges:
                life = (challenge.expires - offer.ts).total_seconds()
                deadline = received + life - min(self.challenge_margin_s, life / 4)
                if challenge.id in self._seen_challenges or life <= 0 or len(self._pool) >= self.pool_size:
                    continue
                self._seen_challenges.add(challenge.id)
                self._seen_order.append(challenge.id)
                if len(self._seen_order) > 10_000:
                    self._seen_challenges.discard(self._seen_order.popleft())
                self._pool.append((challenge, deadline))
                added += 1
        log.debug("%d challenges added to the pool", added)

    def _answered(self, leaf: str, payload: bytes) -> None:
        model = ContextAnswer if leaf == "context" else RegistrationAnswer
        try:
            answer = parse(model, payload)
        except MessageError as exc:
            log.warning("bad %s answer: %s", leaf, exc)
            return
        with self._requests_lock:
            pending = self._requests.get(answer.request_id)
            if pending is None or pending[:2] != (leaf, answer.session_id):
                return  # not ours, answered already, or forgotten
            del self._requests[answer.request_id]
        self._deliver(self.on_context if leaf == "context" else self.on_registration, answer.session_id, answer)

    @staticmethod
    def _deliver(callback, key: str, answer) -> None:
        if callback is None:
            return
        try:
            callback(key, answer)
        except Exception:
            log.exception("the %s callback failed", type(answer).__name__)

    # -- commands

    def _command_loop(self) -> None:
        while True:
            item = self._commands.get()
            if item is None:
                return
            payload, size, retained, response_topic, correlation = item
            if retained:
                log.warning("ignored a retained command (%d bytes): commands are never retained", size)
                continue
            try:
                self._run_command(payload, size, self._response_to(response_topic, correlation))
            except Exception:
                log.exception("a command could not be answered")

    def _response_to(self, response_topic: str | None, correlation: bytes | None) -> tuple[str, bytes | None]:
        """Where a command's reply goes, and the correlation data it echoes (MQTT 5; see the docstring)."""
        own = self.topic("reply")
        where = own
        if response_topic is not None and response_topic != own:
            suffix = response_topic[len(own) + 1:] if response_topic.startswith(own + "/") else ""
            if _RESPONSE_SUFFIX.fullmatch(suffix):
                where = response_topic
            else:
                log.warning("a command named a response topic that is not ours (%d characters); "
                            "replying on %s", len(response_topic), own)
        if correlation is not None and len(correlation) > MAX_CORRELATION_BYTES:
            log.warning("correlation data of %d bytes not echoed (limit %d)", len(correlation),
                        MAX_CORRELATION_BYTES)
            correlation = None
        return where, (bytes(correlation) if correlation is not None else None)

    def _run_command(self, payload: bytes | None, size: int,
                     response: tuple[str, bytes | None] | None = None) -> None:
        response = response or (self.topic("reply"), None)
        if payload is None:
            log.warning("command of %d bytes refused (limit %d)", size, MAX_COMMAND_BYTES)
            self._reply(Reply(id="", ok=False, error=f"payload is {size} bytes; the limit is {MAX_COMMAND_BYTES}"),
                        *response)
            return
        try:
            command = parse(Command, payload, MAX_COMMAND_BYTES)
        except MessageError as exc:
            log.warning("bad command: %s", exc)
            self._reply(Reply(id=command_id(payload), ok=False, error=safe_text(exc)), *response)
            return
        try:
            detail = self.on_command(command) if self.on_command else None
            reply = Reply(id=command.id, ok=True, detail=detail or {})
        except ValidationError:  # our own handler answered outside the reply contract
            log.error("command %s: the answer does not fit the reply contract", command.cmd.value)
            reply = Reply(id=command.id, ok=False, error="the kiosk's answer did not fit the reply contract")
        except Exception as exc:  # a command must never take the link down; the terminal hears why
            log.warning("command %s failed: %s", command.cmd.value, type(exc).__name__)
            error = str(exc) if isinstance(exc, CommandRefused) else f"{type(exc).__name__} (see the kiosk's log)"
            reply = Reply(id=command.id, ok=False, error=safe_text(error))
        self._reply(reply, *response)

    def _reply(self, reply: Reply, where: str | None = None, correlation: bytes | None = None) -> None:
        properties = None
        if self._v5 and correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = correlation
        self._client.publish(where or self.topic("reply"), reply.to_json(), qos=1, properties=properties)

