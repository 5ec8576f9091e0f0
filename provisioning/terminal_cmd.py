"""``uketsuke terminal …``: the reference eligibility terminal on a console."""

from __future__ import annotations

import signal
import threading

import typer
from rich.console import Console

from firmware.config import Broker
from firmware.link.schemas import CommandName
from terminal.app import ReferenceTerminal

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def listen(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(1883),
    site: str = typer.Option("+", help="Site id to follow ('+' = every site)."),
    protocol: str = typer.Option("5", help="MQTT protocol: 5 or 3.1.1"),
    count: int = typer.Option(0, help="Exit after this many results (0 = run until Ctrl-C)."),
) -> None:
    """Show every reader's status and results as they arrive."""
    terminal = ReferenceTerminal(Broker(host=host, port=port, protocol=protocol), site=site,
                                 printer=lambda line: console.print(line, markup=False, highlight=False))
    terminal.start()
    if not terminal.wait_connected(10):
        console.print(f"waiting for the broker at {host}:{port} …")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            if count and len(terminal.view.results) >= count:
                break
            stop.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        terminal.stop()


@app.command()
def send(
    reader: str = typer.Argument(..., help="Reader id"),
    command: CommandName = typer.Argument(...),
    site: str = typer.Option("demo-clinic"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(1883),
    protocol: str = typer.Option("5"),
    language: str = typer.Option("", help="For set_language."),
) -> None:
    """Send one staff command to a reader and print its reply."""
    terminal = ReferenceTerminal(Broker(host=host, port=port, protocol=protocol), site=site)
    terminal.start()
    if not terminal.wait_connected(10):
        raise typer.BadParameter(f"broker {host}:{port} unreachable")
    args = {"language": language} if language else {}
    sent = terminal.send_command(site, reader, command, **args)
    if terminal.wait_for(lambda view: any(r.id == sent.id for r in view.replies), 10):
        reply = next(r for r in terminal.view.replies if r.id == sent.id)
        console.print_json(reply.model_dump_json())
        terminal.stop()
        if not reply.ok:
            raise typer.Exit(1)
    else:
        terminal.stop()
        console.print("no reply within 10 s (is the reader online?)")
        raise typer.Exit(1)
