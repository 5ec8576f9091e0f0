"""``uketsuke card serve DIR``: put a virtual card where third-party PC/SC and nfcpy tools can reach it.

``--vpcd [HOST:PORT]`` inserts the card into pcscd's vpcd reader (``Virtual PCD 00 00`` on port 35963),
so ``pcsc_scan``, ``opensc-tool`` or any JPKI reader program sees it; ``--pn532-pty LINK`` runs a PN532
emulator on a pseudo-terminal with a link to it (a bare name goes under ``/dev`` so that nfcpy's
``tty:NAME:pn532`` finds it), at a true UART rate of ``--baud``. Serves until Ctrl-C.

The link never replaces anything that might be somebody else's: an existing path is refused with
exit 1, except a dangling link to a ``/dev/pts`` entry that no longer exists (what a killed
``card serve`` leaves behind), and on exit only the link this run made is removed, and only if it
still points at this run's pty (see :func:`hal.sim.pn532_emulator.stale_pty_link`).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from hal.errors import BadBackend
from hal.sim.vpcd import DEFAULT_HOST, DEFAULT_PORT

VPCD_DEFAULT = f"{DEFAULT_HOST}:{DEFAULT_PORT}"


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``card`` command group."""
    app.command("serve")(serve)


def serve(
    directory: Path = typer.Argument(..., help="Virtual card profile directory (card.toml + ef/…)."),
    address: str | None = typer.Argument(
        None, metavar="[HOST:PORT]", help=f"With --vpcd: where vpcd listens (default {VPCD_DEFAULT})."
    ),
    vpcd: bool = typer.Option(False, "--vpcd", help="Insert the card into pcscd's vpcd reader."),
    pn532_pty: str | None = typer.Option(
        None, "--pn532-pty", metavar="LINK",
        help="Emulate a PN532 on a pseudo-terminal and link LINK to it (bare name: /dev/LINK). "
        "LINK must not exist (a stale link to a vanished /dev/pts entry is replaced).",
    ),
    baud: int = typer.Option(115200, "--baud", help="Fastest true UART rate the emulated PN532 accepts."),
) -> None:
    """Serve a virtual card until Ctrl-C, so any PC/SC or nfcpy tool can talk to it."""
    # typer has no option with an optional value, so HOST:PORT is a second positional argument,
    # which still reads as ``serve DIR --vpcd HOST:PORT``.
    if vpcd == (pn532_pty is not None):
        raise BadBackend("choose exactly one of --vpcd [HOST:PORT] or --pn532-pty LINK")
    if address is not None and not vpcd:
        raise BadBackend(f"{address!r}: HOST:PORT only goes with --vpcd")
    from hal.sim.card import VirtualCard

    card = VirtualCard(directory)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if vpcd:
            _serve_vpcd(card, address or VPCD_DEFAULT, directory, stop)
        else:
            _serve_pn532(card, pn532_pty, baud, directory, stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo("card removed; stopped")


def _serve_vpcd(card, address: str, directory: Path, stop: threading.Event) -> None:
    from hal.sim.vpcd import VpcdCard, parse_address

    try:
        host, port = parse_address(address)
    except ValueError as exc:
        raise BadBackend(str(exc)) from exc
    reader = f"Virtual PCD 00 {port - DEFAULT_PORT:02d}" if port >= DEFAULT_PORT else "the vpcd reader"
    with VpcdCard(card, host, port) as inserted:
        typer.echo(f"serving {directory} to vpcd at {host}:{port} (PC/SC reader {reader!r}); Ctrl-C to stop")
        while not stop.is_set() and inserted.inserted.is_set():
            stop.wait(0.2)
    if not stop.is_set():
        typer.echo("pcscd closed the connection")


def _serve_pn532(card, link: str, baud: int, directory: Path, stop: threading.Event) -> None:
    from hal.sim.iso14443b import TypeBCard
    from hal.sim.pn532_emulator import Pn532Emulator

    try:
        emulator = Pn532Emulator(TypeBCard(card), max_baud=baud, link=link)
    except ValueError as exc:
        raise BadBackend(str(exc)) from exc
    with emulator:
        typer.echo(
            f"serving {directory} as a PN532 on {emulator.path} (link {emulator.link}, up to {baud} baud); "
            f"nfcpy path {emulator.nfcpy_path}; Ctrl-C to stop"
        )
        while not stop.is_set():
            stop.wait(0.2)
