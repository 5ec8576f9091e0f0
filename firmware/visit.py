"""The flow's services on a real kiosk: card reads on workers, results to the link, announcements.

Every method here is called on the flow thread and returns at once. A card read runs on its own
named daemon thread and posts ``card_read``/``read_failed`` with the token of the ``reading`` entry
that started it; its time limit is that state's timeout (``timeouts.card_read_s``), after which the
flow shows a read error and a late answer is dropped as stale. A read that hangs in a driver (a
``SCardTransmit`` that never returns) therefore keeps its thread, but never blocks the next tap,
which gets a new thread, nor ``stop()``, which waits a moment and leaves it.

Output devices (LED, buzzer, speaker) that fail while running are replaced by their simulation and
reported, like a device missing at start: a broken buzzer must not stop a check-in.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime

from firmware.bus import Listeners
from firmware.card.summary import read_card_facts
from firmware.config import Config
from firmware.flow.session import CheckInSession, Token
from firmware.link.schemas import Method, ResultMessage
from firmware.problems import Problems
from hal.contracts import BeepPattern, CardLink, StatusColour
from hal.errors import HalError
from hal.registry import open_device

log = logging.getLogger(__name__)

_INDICATION = {
    "idle": (StatusColour.IDLE, None),
    "reading": (StatusColour.BUSY, BeepPattern.TAP),
    "done": (StatusColour.OK, BeepPattern.OK),
    "failed": (StatusColour.ERROR, BeepPattern.ERROR),
    "out_of_service": (StatusColour.ERROR, None),
}


class Outputs:
    """The LED/buzzer and the speaker, each replaced by its simulation when it fails."""

    def __init__(self, indicators, speaker, problems: Problems):
        self.indicators, self.speaker = indicators, speaker
        self.problems = problems

    def start(self) -> None:
        self.indicators = self._start_or_simulate("indicators", self.indicators)
        self.speaker = self._start_or_simulate("speaker", self.speaker)

    def _start_or_simulate(self, role: str, device):
        try:
            device.start()
            return device
        except HalError as exc:
            log.error("%s %s unavailable, continuing without it: %s", role, device.spec, exc)
            self.problems.set(role, f"{exc}", blocking=False)
            return open_device(role, "sim")

    def indicate(self, state: str) -> None:
        colour, beep = _INDICATION.get(state, (StatusColour.ATTENTION, None))
        try:
            self.indicators.set_status(colour, blink=state == "reading")
            if beep is not None:
                self.indicators.beep(beep)
        except Exception as exc:  # gpiozero raises its own errors; none may stop the visit
            log.exception("indicators %s failed; replaced by the simulation", self.indicators.spec)
            self.problems.set("indicators", f"failed while running ({type(exc).__name__}); simulated now",
                              blocking=False)
            self._close_quietly(self.indicators)
            self.indicators = open_device("indicators", "sim")

    def close(self) -> None:
        for device in (self.indicators, self.speaker):
            self._close_quietly(device)

    @staticmethod
    def _close_quietly(device) -> None:
        try:
            device.close()
        except Exception:
            log.exception("closing %s failed", device.spec)


class KioskServices:
    """:class:`~firmware.flow.checkin.FlowServices` for the kiosk (see the module docstring)."""

    def __init__(self, config: Config, outputs: Outputs, listeners: Listeners,
                 post: Callable[..., object], now: Callable[[], datetime]):
        self.config = config
        self.outputs = outputs
        self.listeners = listeners
        self.post = post
        self.now = now
        self.link = None  # set by the kiosk once the link exists (the link needs the flow first)
        self.started = False
        self._jobs: set[threading.Thread] = set()
        self._job_numbers = itertools.count(1)
        self._jobs_lock = threading.Lock()
        #: Ids of the latest results handed to the link (for scripted runs that wait for their acks).
        self.result_ids: deque[str] = deque(maxlen=10_000)

    # ------------------------------------------------------------------ card reads

    def start_card_read(self, session: CheckInSession, link: CardLink | None, token: Token) -> None:
        thread = threading.Thread(target=self._read_card, args=(link, token),
                                  name=f"card-read-{next(self._job_numbers)}", daemon=True)
        with self._jobs_lock:
            self._jobs = {job for job in self._jobs if job.is_alive()}
            self._jobs.add(thread)
        thread.start()

    def _read_card(self, link: CardLink | None, token: Token) -> None:
        try:
            if link is None:
                raise HalError("no card link")
            facts = read_card_facts(link, self.now())
        except Exception as exc:  # every failure becomes a screen, never a dead thread
            log.info("card read failed: %s", type(exc).__name__)
            self.post("read_failed", token, error=exc)
            return
        self.post("card_read", token, facts=facts)

    def stop(self, wait_s: float = 2.0) -> None:
        """Wait a moment for card reads in progress; a read hung in a driver is left behind."""
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.join(wait_s)
            if job.is_alive():
                log.warning("%s is still waiting for the card; left behind", job.name)

    # ------------------------------------------------------------------ results and announcements

    def publish_result(self, session: CheckInSession) -> None:
        card = session.card
        result = ResultMessage(
            site=self.config.site_id, reader=self.config.reader_id, method=Method(session.method),
            card_kind=card.token_kind, cert_der_b64=base64.b64encode(card.cert_der).decode(),
            cert_status=card.cert_status, consent=session.consent, proxy=session.proxy,
            face_score=session.face_score, face_threshold=session.face_threshold,
        )
        self.link.publish_result(result)
        self.result_ids.append(result.id)
        log.info("result %s handed to the link", result.id)

    def announce(self, state: str, session: CheckInSession) -> None:
        if not self.started:  # the flow's first idle, before devices are up; start() announces again
            return
        self.outputs.indicate(state)
        detail = session.error_kind if state in ("failed", "out_of_service") else ""
        self.link.publish_event(state, detail)
        self.listeners.notify(state, session)
