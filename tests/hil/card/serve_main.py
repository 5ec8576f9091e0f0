"""Run ``card serve`` as a program: through ``uketsuke card serve`` once the card group mounts it,
else through a one-command typer app around :func:`provisioning.card_serve_cmd.register`."""

from __future__ import annotations

import sys

import typer


def serve_command() -> list[str]:
    """The argv prefix that runs ``card serve`` in a subprocess."""
    from provisioning import card_cmd

    names = {command.name for command in card_cmd.app.registered_commands}
    if "serve" in names:
        return [sys.executable, "-m", "provisioning.cli", "card", "serve"]
    return [sys.executable, "-m", "tests.hil.card.serve_main", "serve"]


def main() -> None:
    from provisioning import card_serve_cmd

    app = typer.Typer(no_args_is_help=True)

    @app.callback()
    def card() -> None:
        """Virtual card commands."""

    card_serve_cmd.register(app)
    app()


if __name__ == "__main__":
    main()
