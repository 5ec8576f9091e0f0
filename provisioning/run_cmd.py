"""``uketsuke run``: start the kiosk (window, fullscreen, or headless scripted demo)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import typer
from rich.console import Console

from firmware.config import load_config
from firmware.logs import configure

console = Console(stderr=True)


def _no_display() -> bool:
    if os.environ.get("HEADLESS") == "1":
        return True
    if os.environ.get("SDL_VIDEODRIVER"):
        return os.environ["SDL_VIDEODRIVER"] in ("dummy", "offscreen")
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        config: Path | None = typer.Option(None, "--config", "-c", help="config.toml (default: all simulated)"),
        demo: bool = typer.Option(False, help="Embedded broker, reference terminal and a virtual demo card."),
        headless: bool = typer.Option(False, help="No window: play a scripted check-in and save screenshots."),
        fullscreen: bool = typer.Option(False, help="Fullscreen (the Pi's 7-inch display)."),
        screenshots: Path = typer.Option(Path("screenshots"), help="Where headless screenshots go."),
        log_json: bool = typer.Option(False, help="JSON log lines instead of journald text."),
        debug: list[str] = typer.Option([], help="Enable DEBUG for one logger (repeatable)."),
        checkins: int | None = typer.Option(None, min=1, help="Headless: play N scripted check-ins with the "
                                            "configured simulated devices, exit once the terminal acknowledged "
                                            "them all, print one JSON line."),
        timeout: float = typer.Option(300.0, min=1, help="With --checkins: how long to wait for the acks (s)."),
        scenario: list[str] = typer.Option([], help="With --demo, headless: play only these named scenarios "
                                           "(repeatable; default every one; see --list-scenarios)."),
        list_scenarios: bool = typer.Option(False, help="Print the demo's scenarios and exit."),
        staff_port: int | None = typer.Option(None, "--staff-port", min=0, max=65535,
                                              help="With --demo: serve the terminal's staff page (目視確認 "
                                                   "OK/NG, cancel, language) on this port, 0 = any free one; "
                                                   "its URL and a one-time password are printed."),
    ) -> None:
        """Start the kiosk."""
        from firmware.memory import tune_malloc

        tune_malloc()  # before the kiosk's threads exist: arenas made earlier are not capped
        from ui.scenarios import BY_NAME, SCENARIOS

        if list_scenarios:
            for each in SCENARIOS:
                print(f"{each.name:24} {each.profile:18} {each.about}")
            return
        unknown = [name for name in scenario if name not in BY_NAME]
        if unknown:
            console.print(f"uketsuke: error: unknown scenario {', '.join(unknown)} (see --list-scenarios)")
            raise typer.Exit(2)
        configure("INFO", json_lines=log_json, debug_modules=debug)
        cfg = load_config(config)
        headless = headless or _no_display() or checkins is not None
        if headless:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

        from firmware.app import Kiosk
        from ui.demo import (
            Demo,
            demo_card_profile,
            demo_catalogue,
            demo_config,
            demo_trust_anchors,
            play_check_ins,
            play_scenarios,
            wire_simulation,
        )
        from ui.window import KioskWindow

        demo_env = Demo(cfg, isolate=demo, staff_port=staff_port) if demo or cfg.broker.embedded else None
        if staff_port is not None and demo_env is None:
            console.print("uketsuke: error: --staff-port serves the demo's terminal; with a real broker run "
                          "`uketsuke terminal listen --staff-port N --staff-password-file F`")
            raise typer.Exit(2)
        if demo_env is not None:
            cfg = demo_env.start(printer=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))
        cards_dir = Path(tempfile.mkdtemp(prefix="uketsuke-cards-")) if demo or checkins else None
        catalogue = None
        card = None
        if demo and checkins is None:
            profiles = sorted({BY_NAME[name].profile for name in scenario}) or None
            catalogue = demo_catalogue(cards_dir, profiles)
            cfg = demo_config(cfg, catalogue)
            if demo_env is not None:  # the demo terminal checks the cards' genuineness against the same issuer
                from firmware.card.cvc import load_issuer_keys

                demo_env.terminal.issuer_keys = load_issuer_keys(cfg.card.issuer_keys_dir)
                demo_env.terminal.trust_anchors = demo_trust_anchors(info.directory for info in catalogue.values())
            card = catalogue[next(iter(catalogue))].directory
        elif cards_dir is not None:
            card = demo_card_profile(cards_dir)
            if demo_env is not None:  # the demo terminal checks the card's certificate against its test CA
                demo_env.terminal.trust_anchors = demo_trust_anchors([card])
        kiosk = Kiosk(cfg)
        wire_simulation(kiosk)
        kiosk.start()
        window = KioskWindow(kiosk, fullscreen=fullscreen, demo_card=card, demo_cards=catalogue)
        failed = False
        try:
            if checkins is not None:
                counts = play_check_ins(kiosk, card, checkins, timeout)
                print(json.dumps(counts), flush=True)
                failed = counts["acknowledged"] < checkins
            elif headless and demo:
                failed = not play_scenarios(kiosk, demo_env.terminal, catalogue, scenario, window, screenshots)
                console.print(f"headless demo: screenshots in {screenshots.resolve()}/<scenario>/", soft_wrap=True)
            elif headless:
                console.print("headless: no display; running without a window until Ctrl-C")
                window.run()
            else:
                if catalogue:
                    keys = ", ".join(f"{i % 10}: {name}" for i, name in enumerate(catalogue, 1) if i <= 10)
                    console.print(f"demo: press a key to tap a card or phone ({keys}); R removes it; Esc quits",
                                  soft_wrap=True)
                elif card is not None:
                    console.print("demo: press C to tap the demo card, R to remove it, Esc to quit")
                window.run()
        except RuntimeError as exc:  # a scripted step that did not happen: one line, not a traceback
            console.print(f"uketsuke: error: {exc}")
            failed = True
        finally:
            window.close()
            kiosk.stop()
            if demo_env is not None:
                demo_env.stop()
            if cards_dir is not None:
                shutil.rmtree(cards_dir, ignore_errors=True)
        if failed:
            raise typer.Exit(1)
