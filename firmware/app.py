"""Wiring: config + HAL + flow + link. ``Kiosk`` is what ``uketsuke run`` starts.

The pieces, and who owns what (docs/design.md, "Runtime"):

- :class:`~firmware.flow.runner.FlowRunner` — the ``flow`` thread owns the visit; everybody else
  posts events to it.
- :class:`~firmware.visit.KioskServices` — what the flow asks for: card reads on workers, results
  to the link, announcements to the outputs, the link and the :class:`~firmware.bus.Listeners`.
- :class:`~firmware.link.mqtt.KioskLink` — paho, the outbox, commands; its own threads.
- :class:`~firmware.commands.CommandHandler` — the terminal's commands, on the link's command thread.
- :class:`~firmware.problems.Problems` — staff-visible problems; a blocking one puts the flow out of
  service until it clears, and every change goes to the status topic.
- the card reader's watcher thread and the ``clock-check`` thread only report and post.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime

from firmware.bus import Listeners
from firmware.card.collation import CollationPolicy
from firmware.card.cvc import CvcError, load_issuer_keys
from firmware.commands import CommandHandler
from firmware.config import Config
from firmware.consent import load_policy
from firmware.flow.checkin import CheckInFlow
from firmware.flow.runner import FlowRunner
from firmware.flow.session import CheckInSession, Token
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.memory import release_free_memory
from firmware.problems import Problems
from firmware.supervisor import Supervised
from firmware.visit import KioskServices, Outputs
from hal.clock import clock_synchronised
from hal.contracts import CardLink
from hal.errors import HalError
from hal.registry import open_device

log = logging.getLogger(__name__)

SOFTWARE = "uketsuke 0.1.0"
CLOCK_CHECK_EVERY_S = 60.0


class Kiosk:
    """One reader: devices from the config, the check-in flow, and the link to the terminal."""

    def __init__(self, config: Config, now: Callable[[], datetime] | None = None):
        self.config = config
        self.now = now or (lambda: datetime.now(UTC))
        self.health = Problems()
        self.reader = open_device("nfc", config.devices.nfc)
        self.outputs = Outputs(open_device("indicators", config.devices.indicators),
                               open_device("speaker", config.devices.speaker), self.health)
        self.listeners = Listeners(on_error=lambda listener, exc: self.health.set(
            "listener", f"a state listener failed ({type(exc).__name__})"))
        #: 照合番号B policy across taps (the face path uses it; one ledger per data dir).
        self.collation_policy = CollationPolicy.from_config(config)
        self.face_camera = open_device("camera", config.devices.face_camera)
        self.card_camera = open_device("camera", config.devices.card_camera)
        self.consent_policy = load_policy(config.consent.policy)
        self.services = KioskServices(config, self.outputs, self.listeners, self.post, self.now,
                                      collation_policy=self.collation_policy, face_camera=self.face_camera,
                                      card_camera=self.card_camera, issuer_keys=self._issuer_keys())
        self.runner = FlowRunner(lambda: CheckInFlow(self.services, config, policy=self.consent_policy, now=self.now),
                                 on_fault=self._flow_fault, after_recovery=self._sync_service)
        self.outbox = Outbox(config.data_dir / "outbox.sqlite3")
        self.link = KioskLink(config.site_id, config.reader_id, config.broker, self.outbox,
                              on_command=CommandHandler(self.runner, lambda: self.link.pending),
                              software=SOFTWARE, report=self._link_report)
        self.services.link = self.link
        for name, callback in (("on_context", self.services.context_answered),
                               ("on_registration", self.services.registration_answered),
                               ("on_answer", self.services.result_answered)):
            if hasattr(self.link, name):
                setattr(self.link, name, callback)
        self.warm_up = Supervised("face-warm-up", self._warm_up, report=self._thread_report)
        self.clock_check = Supervised("clock-check", self._check_clock, report=self._thread_report)
        self._tap = 0
        self._started = False

    # ------------------------------------------------------------------ views for screens and tests

    @property
    def flow(self) -> CheckInFlow:
        return self.runner.flow

    @property
    def problems(self) -> list[str]:
        """One line per problem, for staff (status screen, selftest, status topic)."""
        return self.health.lines()

    def touch(self, event: str, token: Token | None, /, **data) -> Future:
        """A screen's button: keypad digits go to the flow thread's keypad (a digit is never event
        data the state machine keeps); everything else is posted as an event."""
        if event == "pin_digit":
            digit = data.get("digit")
            return self.runner.call(lambda flow: flow.type_digit(digit, token))
        if event == "pin_delete":
            return self.runner.call(lambda flow: flow.delete_digit(token))
        return self.post(event, token, **data)

    def _issuer_keys(self) -> dict:
        """Trusted CVC issuers; without any the face path is not offered (PIN and staff still are).

        On simulated cameras that is only logged (tests and demos that do not use the face path); a
        kiosk with real cameras reports it as a problem, because a technician forgot a setting.
        """
        directory = self.config.card.issuer_keys_dir
        if directory is None:
            if self.config.devices.face_camera == "sim":
                log.info("no card.issuer_keys_dir: the face path is not offered")
            else:
                self.health.set("cvc-issuers", "no card.issuer_keys_dir: the face path is not offered",
                                blocking=False)
            return {}
        try:
            keys = load_issuer_keys(directory)
        except (CvcError, OSError) as exc:
            self.health.set("cvc-issuers", f"card.issuer_keys_dir unreadable: {exc}", blocking=False)
            return {}
        if not keys:
            self.health.set("cvc-issuers", f"no issuer key in {directory}: the face path refuses every card",
                            blocking=False)
        return keys

    def _warm_up(self, _stopping) -> None:
        """Load the face models and the OCR before the first patient needs them."""
        self.services.engine.warm_up()
        release_free_memory()  # the models' parse buffers (~25 MB of freed heap, docs/notes/flow-bench.md)
        return 24 * 3600.0  # loaded: nothing more to do (a failure is reported and retried)

    @property
    def indicators(self):
        return self.outputs.indicators

    @property
    def speaker(self):
        return self.outputs.speaker

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start devices, the link and the flow. Nothing here stops the kiosk: a broker that is down
        only delays results, a missing LED or speaker is replaced by its simulation (and reported),
        and a blocking problem (no reader, no outbox, no clock) puts it out of service until it clears."""
        self._started = True
        self.outputs.start()
        self.health.subscribe(self._problems_changed)
        self.link.start()
        self.reader.when_card_presented = self._card_presented
        self.reader.when_card_removed = self._card_removed
        self.reader.when_reader_changed = self._reader_changed
        self.reader.when_listener_failed = lambda exc: self.health.set(
            "card-watcher", f"a card event failed ({type(exc).__name__})")
        try:
            self.reader.start()
        except HalError as exc:
            self._reader_changed(exc)
        self._check_clock(None)
        ledger = self.collation_policy.ledger
        if ledger is not None and not ledger.available:  # the face path refuses 照合番号B; PIN and staff work
            self.health.set("collation-ledger", f"照合番号B is refused until a technician resets the ledger: "
                                                f"{ledger.problem}")
        for role, camera in (("face_camera", self.face_camera), ("card_camera", self.card_camera)):
            try:
                camera.start()
            except HalError as exc:
                self.health.set(role, f"{exc}; the face path is not available", blocking=False)
        self.services.started = True
        self.runner.start()
        self.runner.call(lambda flow: self.services.announce(flow.state_id, flow.session))
        self._problems_changed(self.health)
        self.reader.watch()
        self.clock_check.start()
        if self.services.face_available():
            self.warm_up.start()

    def stop(self) -> None:
        self.reader.close()
        self.clock_check.stop()
        # A model load cannot be interrupted; a process that exits while one runs on a daemon thread
        # aborts inside the native library (SIGABRT), so wait for it to finish.
        self.warm_up.stop(timeout_s=60)
        self.runner.stop()
        self.services.stop()
        self.flow.session.wipe()
        self.link.stop()
        self.outputs.close()
        for camera in (self.face_camera, self.card_camera):
            camera.close()
        self.outbox.close()

    # ------------------------------------------------------------------ events in

    def post(self, event: str, token: Token | None = None, /, **data) -> Future:
        """Queue an event for the flow thread (never blocks); the future says whether it was taken."""
        return self.runner.post(event, token, **data)

    def add_listener(self, listener: Callable[[str, CheckInSession], None]) -> None:
        """Call ``listener(state, session)`` on every state change, on the flow thread (screens, tests)."""
        self.listeners.add(listener)

    def _card_presented(self, link: CardLink) -> None:  # watcher thread
        self._tap += 1
        self.post("card_presented", None, link=link, tap=self._tap)

    def _card_removed(self) -> None:  # watcher thread
        self.post("card_removed", None, tap=self._tap)

    def _reader_changed(self, error: HalError | None) -> None:
        if error is None:
            log.info("card reader %s is back", self.reader.spec)
            self.health.clear("nfc")
        else:
            self.health.set("nfc", f"{error}", blocking=True)

    # ------------------------------------------------------------------ problems

    def _problems_changed(self, problems: Problems) -> None:
        if self._started:
            self.runner.call(self._sync_service)
            self.link.publish_status(problems.lines())

    def _sync_service(self, flow: CheckInFlow) -> None:
        """On the flow thread: out of service while a blocking problem exists, back when none is left."""
        blocking = self.health.blocking
        if blocking and flow.state_id != "out_of_service":
            self.runner.send_now("device_lost", reason=blocking[0].key)
        elif not blocking and flow.state_id == "out_of_service":
            self.runner.send_now("device_ok")  # before a tap queued behind the news that the reader is back

    def _link_report(self, key: str, text: str | None, blocking: bool) -> None:
        if text is None:
            self.health.clear(key)
        else:
            self.health.set(key, text, blocking=blocking)

    def _flow_fault(self, where: str, error: BaseException) -> None:
        self.health.set("flow", f"{type(error).__name__} in {where}; the visit was ended")

    def _thread_report(self, name: str, error: BaseException | None) -> None:
        if error is None:
            self.health.clear(name)
        else:
            self.health.set(name, f"failed ({type(error).__name__}); retrying")

    def _check_clock(self, _stopping) -> float:
        status = clock_synchronised(self.now(), self.config.clock.source, self.config.clock.not_before)
        if status.synchronised:
            self.health.clear("clock")
        else:
            self.health.set("clock", f"not synchronised: {status.detail}", blocking=True)
        return CLOCK_CHECK_EVERY_S
