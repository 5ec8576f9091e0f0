"""The demo around the kiosk: an embedded broker, the reference terminal, a virtual demo card, and
the scripted headless check-in that ``make run`` plays where there is no display."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from firmware.app import Kiosk
from firmware.config import Broker, Config
from firmware.link.broker import EmbeddedBroker, free_port
from terminal.app import ReferenceTerminal

log = logging.getLogger(__name__)


def demo_card_profile(data_dir: Path, kind: str = "card") -> Path:
    """A virtual card for the demo, made once under ``data_dir/demo-cards`` (a fictitious person)."""
    from hal.sim.card.generator import make_profile

    target = data_dir / "demo-cards" / kind
    if not (target / "card.toml").is_file():
        make_profile(target, kind=kind)
    return target


@dataclass
class Demo:
    """Embedded broker + terminal for a demo kiosk; the kiosk's config is rewritten to use them."""

    config: Config
    broker: EmbeddedBroker | None = None
    terminal: ReferenceTerminal | None = None
    lines: list[str] = field(default_factory=list)

    def start(self, printer=print) -> Config:
        port = free_port()
        self.broker = EmbeddedBroker("127.0.0.1", port)
        self.broker.start()
        broker_cfg = Broker(host="127.0.0.1", port=port, embedded=True, protocol="3.1.1")
        self.config = self.config.model_copy(update={"broker": broker_cfg})

        def show(line: str) -> None:
            self.lines.append(line)
            printer(f"terminal: {line}")

        self.terminal = ReferenceTerminal(broker_cfg, printer=show)
        self.terminal.start()
        self.terminal.wait_connected(5)
        return self.config

    def stop(self) -> None:
        if self.terminal:
            self.terminal.stop()
        if self.broker:
            self.broker.stop()


def wait_for_state(kiosk: Kiosk, state: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if kiosk.flow.state_id == state:
            return True
        time.sleep(0.02)
    return False


def scripted_check_in(kiosk: Kiosk, window, terminal: ReferenceTerminal, card: Path, out_dir: Path) -> list[Path]:
    """Idle → tap → read → result at the terminal → remove → idle, with a screenshot of each step.

    Raises:
        RuntimeError: a step did not happen in time (the message says which).
    """
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
