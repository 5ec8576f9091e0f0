"""The demo around the kiosk: an embedded broker, the reference terminal, a virtual demo card, the
scripted headless check-in that ``make run`` plays where there is no display, and the N scripted
check-ins of ``uketsuke run --headless --checkins N``.

``--demo`` never touches a configured data dir or reader id: it runs in a temporary data dir under
its own site and reader ids, against its own embedded broker, so a technician who tries the demo
with the production ``config.toml`` cannot flush real pending results into a demo broker (where they
would be acknowledged and deleted) or publish a fake result under a real reader's name.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from firmware.app import Kiosk
from firmware.config import Broker, Config
from firmware.link.broker import EmbeddedBroker, free_port
from terminal.app import ReferenceTerminal
from terminal.clinic_files import DEFAULT_ROOT, ClinicFiles

log = logging.getLogger(__name__)

DEMO_SITE, DEMO_READER = "demo-clinic", "demo-reader"


def demo_catalogue(directory: Path, names=None) -> dict:
    """The simulated cards and phones of the scenarios (fictitious people), made under ``directory``."""
    from hal.sim.card.catalogue import make_catalogue

    return make_catalogue(directory / "demo-cards", ca_dir=directory / "demo-cards" / "ca", names=names)


def demo_config(config: Config, catalogue: dict) -> Config:
    """Trust the catalogue's test CVC issuer (the face path checks the card is genuine against it)."""
    issuer_dir = next(iter(catalogue.values())).cvc_issuer_public_pem.parent
    return config.model_copy(update={"card": config.card.model_copy(update={"issuer_keys_dir": issuer_dir})})


def demo_trust_anchors(profile_dirs) -> tuple:
    """The test CA of the demo's cards (every profile keeps its ``auth_ca.pem``): the demo terminal's
    trust anchors, as the J-LIS roots are a production terminal's."""
    from terminal.trust import load_trust_anchors

    return load_trust_anchors(sorted({Path(directory) / "auth_ca.pem" for directory in profile_dirs}))


def wire_simulation(kiosk: Kiosk) -> None:
    """Simulated cameras: the card camera looks at the simulated reader's card."""
    follow = getattr(kiosk.card_camera, "follow", None)
    if follow is not None and hasattr(kiosk.reader, "present"):
        follow(kiosk.reader)


def play_scenarios(kiosk: Kiosk, terminal, catalogue: dict, names, window, out_dir: Path | None,
                   printer=print) -> bool:
    """Play the named scenarios (all when ``names`` is empty); one JSON line each. True if all passed."""
    import json

    from ui.scenarios import BY_NAME, SCENARIOS, play

    chosen = [BY_NAME[name] for name in names] if names else list(SCENARIOS)
    ok = True
    for scenario in chosen:
        try:
            line = play(scenario, kiosk, terminal, catalogue, window=window, out_dir=out_dir)
        except RuntimeError as exc:
            ok = False
            line = {"scenario": scenario.name, "error": str(exc)}
        printer(json.dumps({k: v for k, v in line.items() if k not in ("screenshots", "timeline")},
                           ensure_ascii=False))
    return ok


def demo_card_profile(directory: Path, kind: str = "card") -> Path:
    """A virtual card for the demo, made once under ``directory/demo-cards`` (a fictitious person)."""
    from hal.sim.card.generator import make_profile

    target = directory / "demo-cards" / kind
    if not (target / "card.toml").is_file():
        make_profile(target, kind=kind)
    return target


@dataclass
class Demo:
    """Embedded broker + terminal for a demo kiosk; the kiosk's config is rewritten to use them.

    ``isolate`` (``--demo``) also swaps in a temporary data dir and the demo site/reader ids; a
    config with ``broker.embedded = true`` alone keeps its own.
    """

    config: Config
    isolate: bool = True
    broker: EmbeddedBroker | None = None
    terminal: ReferenceTerminal | None = None
    lines: list[str] = field(default_factory=list)
    workdir: Path | None = None
    #: The terminal's clinic files (face/, req/ → res/); kept after the demo (var/ is git-ignored).
    files_dir: Path | None = DEFAULT_ROOT
    #: Serve the terminal's staff page on this port (0: any free one), with a one-time password.
    staff_port: int | None = None
    staff: object | None = None  # terminal.staff.StaffServer once started

    def start(self, printer=print) -> Config:
        port = free_port()
        self.broker = EmbeddedBroker("127.0.0.1", port)
        self.broker.start()
        # amqtt is plain MQTT 3.1.1 on loopback: the one broker the kiosk may reach without TLS
        update: dict = {"broker": Broker(host="127.0.0.1", port=port, embedded=True, protocol="3.1.1",
                                         insecure_local=True)}
        if self.isolate:
            self.workdir = Path(tempfile.mkdtemp(prefix="uketsuke-demo-"))
            update |= {"data_dir": self.workdir / "var", "site_id": DEMO_SITE, "reader_id": DEMO_READER}
        self.config = self.config.model_copy(update=update)

        def show(line: str) -> None:
            self.lines.append(line)
            printer(f"terminal: {line}")

        from terminal.registry import Registry

        registry = Registry()
        files = ClinicFiles(self.files_dir, registry) if self.files_dir is not None else None
        self.terminal = ReferenceTerminal(self.config.broker, site=self.config.site_id, printer=show,
                                          registry=registry, files=files)
        self.terminal.start()
        self.terminal.wait_connected(5)
        if self.staff_port is not None:
            self._serve_staff_page(printer)
        return self.config

    def _serve_staff_page(self, printer) -> None:
        """The staff page on loopback, for the demo's 目視確認 buttons; its password is made here, once."""
        import secrets

        from terminal.staff import StaffAccounts, hash_password, serve

        password = secrets.token_urlsafe(12)
        self.staff = serve(self.terminal, StaffAccounts({"staff": hash_password(password)}), "127.0.0.1",
                           self.staff_port)
        printer(f"staff page {self.staff.url} (user staff, password {password})")

    def stop(self) -> None:
        if self.staff is not None:
            self.staff.stop()
        if self.terminal:
            self.terminal.stop()
        if self.broker:
            self.broker.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _ensure_patient(kiosk: Kiosk, **script):
    """The simulated patient who answers the screens (one per kiosk; PIN and agree by default)."""
    from ui.patient import Patient

    patient = getattr(kiosk, "demo_patient", None)
    if patient is None:
        patient = kiosk.demo_patient = Patient(**script).attach(kiosk)
    return patient


def wait_until(predicate, timeout_s: float, step_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def wait_for_state(kiosk: Kiosk, state: str, timeout_s: float) -> bool:
    return wait_until(lambda: kiosk.flow.state_id == state, timeout_s)


def scripted_check_in(kiosk: Kiosk, window, terminal: ReferenceTerminal, card: Path, out_dir: Path) -> list[Path]:
    """Idle → tap → a PIN check-in → result at the terminal → remove → idle, with screenshots.

    A :class:`~ui.patient.Patient` is attached for the visit if none is yet.

    Raises:
        RuntimeError: a step did not happen in time (the message says which).
    """
    _ensure_patient(kiosk)
    shots = [window.screenshot(out_dir / "01-idle.png")]
    before = len(terminal.view.results)
    kiosk.reader.present(card)
    if not wait_for_state(kiosk, "done", 30):
        shots.append(window.screenshot(out_dir / "99-stuck.png"))
        raise RuntimeError(f"check-in did not complete: kiosk is in state {kiosk.flow.state_id!r}")
    shots.append(window.screenshot(out_dir / "02-done.png"))
    if not terminal.wait_for(lambda view: len(view.results) > before, 10):
        raise RuntimeError("the terminal did not receive the result")
    kiosk.reader.remove()
    if not wait_for_state(kiosk, "idle", 10):
        raise RuntimeError("kiosk did not return to idle after the card was removed")
    shots.append(window.screenshot(out_dir / "03-idle-again.png"))
    return shots


def play_check_ins(kiosk: Kiosk, card: Path, count: int, timeout_s: float) -> dict[str, int]:
    """Tap and remove ``card`` ``count`` times, then wait until the terminal acknowledged them all.

    Returns ``{"checkins", "acknowledged", "pending"}``: check-ins that reached ``done``, results of
    this run the terminal acknowledged, and results still waiting (from this run or an earlier one).

    Raises:
        RuntimeError: the reader is not a simulated one, or a check-in did not complete in time.
    """
    if not hasattr(kiosk.reader, "present"):
        raise RuntimeError(f"--checkins needs the simulated reader (devices.nfc = \"sim\"), not {kiosk.reader.spec!r}")
    _ensure_patient(kiosk)
    step_s = kiosk.config.timeouts.card_read_s + kiosk.config.timeouts.context_s + 20
    done = 0
    for number in range(1, count + 1):
        if not wait_for_state(kiosk, "idle", step_s):
            raise RuntimeError(f"check-in {number}: the kiosk is {kiosk.flow.state_id!r}, not idle "
                               f"(problems: {'; '.join(kiosk.problems) or 'none'})")
        kiosk.reader.present(card)
        if not wait_for_state(kiosk, "done", step_s):
            raise RuntimeError(f"check-in {number} did not complete: the kiosk is {kiosk.flow.state_id!r}")
        done += 1
        kiosk.reader.remove()
    first = len(kiosk.services.result_ids) - done
    ours = list(kiosk.services.result_ids)[first:]
    deadline = time.monotonic() + timeout_s
    while kiosk.link.acknowledged_among(ours) < len(ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    kiosk.link.wait_flushed(max(0.0, deadline - time.monotonic()))
    return {"checkins": done, "acknowledged": kiosk.link.acknowledged_among(ours), "pending": kiosk.link.pending}
