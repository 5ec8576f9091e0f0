"""The one console entry point, ``uketsuke``: a thin typer layer over library calls.

Each subsystem keeps its commands in its own module (``provisioning/<group>_cmd.py``) and this file
only mounts them, so the card, face, terminal and provisioning issues grow their groups without
touching each other. Failures print ``uketsuke: error: <message>`` on stderr and exit 1 (2 for a bad
config or bad usage); ``UKETSUKE_DEBUG=1`` re-raises with a traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from firmware.errors import ConfigError
from hal.errors import UketsukeError
from provisioning import card_cmd, face_cmd, link_cmd, run_cmd, selftest_cmd, terminal_cmd

app = typer.Typer(
    name="uketsuke",
    help="Open face-authenticating card reader kiosk (顔認証付きカードリーダー).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
run_cmd.register(app)
selftest_cmd.register(app)
app.add_typer(card_cmd.app, name="card", help="Read My Number cards and serve virtual ones.")
app.add_typer(face_cmd.app, name="face", help="Evaluate, calibrate and benchmark face verification.")
app.add_typer(terminal_cmd.app, name="terminal", help="The reference eligibility terminal.")
app.add_typer(link_cmd.app, name="link", help="The link's broker: production mosquitto config and ACL.")


def fail(message: str, code: int = 1) -> None:
    """Print one line on stderr and exit: the only way the CLI reports an error."""
    print(f"uketsuke: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main() -> None:
    """Console entry point: run the typer app, turning project errors into one clear line."""
    try:
        app()
    except ConfigError as exc:
        if os.environ.get("UKETSUKE_DEBUG"):
            raise
        fail(str(exc), 2)
    except (UketsukeError, OSError) as exc:
        if os.environ.get("UKETSUKE_DEBUG"):
            raise
        fail(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
