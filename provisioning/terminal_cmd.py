"""``uketsuke terminal …``: the reference eligibility terminal on a console."""

from __future__ import annotations

import json
import signal
import threading
from enum import StrEnum
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from firmware.card.cvc import CvcError, load_issuer_keys
from firmware.config import Broker, load_config
from firmware.link.schemas import Command, CommandName
from terminal.app import ReferenceTerminal
from terminal.clinic_files import DEFAULT_INSTITUTION_CODE, DEFAULT_ROOT, ClinicFiles
from terminal.registry import Registry, RegistryError

app = typer.Typer(no_args_is_help=True)
console = Console()


class Encoding(StrEnum):
    shift_jis = "shift_jis"
    utf8 = "utf-8"


class Protocol(StrEnum):
    v5 = "5"
    v311 = "3.1.1"


def _broker(config: Path | None, host: str | None, port: int | None, protocol: Protocol | None,
            insecure_local: bool = False) -> tuple[Broker, str]:
    """The broker (and the config's site) from ``--config``, with any flag given overriding it.

    TLS settings (the terminal's own certificate) come from the config's ``[broker]``; without a
    config only ``--insecure-local`` (a plain broker on this machine) can connect.
    """
    cfg = load_config(config) if config else None
    base = cfg.broker if cfg else Broker()
    update = {key: value for key, value in (("host", host), ("port", port),
                                            ("protocol", protocol.value if protocol else None),
                                            ("insecure_local", insecure_local or None)) if value is not None}
    broker = Broker.model_validate(base.model_dump() | update)
    return broker, (cfg.site_id if cfg else "")


def _thread_report(printer):
    def report(name: str, error: BaseException | None) -> None:
        if printer is not None:
            printer(f"[terminal] {name} {'recovered' if error is None else f'failed: {type(error).__name__}: {error}'}")
    return report


@app.command()
def listen(
    config: Path | None = typer.Option(None, "--config", "-c", help="Take broker and site from this config.toml."),
    host: str | None = typer.Option(None, help="Broker host (default 127.0.0.1)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Broker port (default 1883)."),
    site: str | None = typer.Option(None, help="Site id to follow ('+' = every site; default: the config's, or '+')."),
    protocol: Protocol | None = typer.Option(None, help="MQTT protocol (default 5)."),
    insecure_local: bool = typer.Option(False, "--insecure-local",
                                        help="Plain MQTT to a broker on this machine (no TLS): demos and tests."),
    count: int = typer.Option(0, min=0, help="Exit once this many unique results arrived (0 = until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line {checkins, acknowledged, pending} at exit."),
    name: str = typer.Option("listen", help="Stable client-id part: the broker keeps this terminal's session "
                                            "(and results sent while it is away) under it."),
    registry: Path | None = typer.Option(None, "--registry", exists=True, dir_okay=False,
                                         help="Fixture registry (TOML or JSON; see terminal/registry.py): "
                                              "registered?, previous consent, eligibility per certificate."),
    issuer_keys: Path | None = typer.Option(None, "--issuer-keys", exists=True, file_okay=False,
                                            help="Folder of trusted CVC issuer keys (<issuer reference>.pem); "
                                                 "without it, face results carry an 'unverified issuer' problem."),
    files: Path = typer.Option(DEFAULT_ROOT, "--files", file_okay=False,
                               help="The clinic files folder: face/ (a file per verified check-in), req/ → res/ "
                                    "(number-based lookups); see docs/notes/clinic-files.md."),
    no_files: bool = typer.Option(False, "--no-files", help="Serve no clinic files."),
    institution_code: str = typer.Option(DEFAULT_INSTITUTION_CODE, help="医療機関コード (10 digits) in the files "
                                                                        "(default: a fictitious one)."),
    encoding: Encoding = typer.Option(Encoding.shift_jis, help="Clinic file encoding (CharacterCodeIdentifier 1 "
                                                               "Shift_JIS or 0 UTF-8)."),
) -> None:
    """Show every reader's status and results as they arrive, answering requests and acknowledging results."""
    broker, config_site = _broker(config, host, port, protocol, insecure_local)
    site = site or config_site or "+"
    printer = None if as_json else (lambda line: console.print(line, markup=False, highlight=False))
    try:
        fixture = Registry.load(registry) if registry else None
        keys = load_issuer_keys(issuer_keys) if issuer_keys else None
    except (RegistryError, CvcError) as exc:
        raise typer.BadParameter(str(exc)) from None
    fixture = fixture or Registry()
    try:
        clinic = None if no_files else ClinicFiles(files, fixture, institution_code=institution_code,
                                                   encoding=encoding.value, report=_thread_report(printer))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    terminal = ReferenceTerminal(broker, site=site, printer=printer, name=name, registry=fixture, issuer_keys=keys,
                                 files=clinic)
    terminal.start()  # an unwritable files folder raises ClinicFilesError: one line from the CLI's main()
    if clinic is not None and not as_json:
        console.print(f"clinic files in {files.resolve()}/{{face,req,res}}", highlight=False)
    if not terminal.wait_connected(10) and not as_json:
        console.print(f"waiting for the broker at {broker.host}:{broker.port} …")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def all_arrived(view) -> bool:
        ids = {r.id for r in view.results}
        return bool(count) and len(ids) >= count and ids <= view.acknowledged

    try:
        while not stop.is_set() and not terminal.wait_for(all_arrived, 0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        terminal.stop()
    if as_json:
        with terminal.locked():
            ids = {r.id for r in terminal.view.results}
            acknowledged = len(ids & terminal.view.acknowledged)
        print(json.dumps({"checkins": len(ids), "acknowledged": acknowledged, "pending": len(ids) - acknowledged}),
              flush=True)


@app.command()
def send(
    reader: str = typer.Argument(..., help="Reader id"),
    command: CommandName = typer.Argument(...),
    config: Path | None = typer.Option(None, "--config", "-c", help="Take broker and site from this config.toml."),
    site: str | None = typer.Option(None, help="Site id (default: the config's, or demo-clinic)."),
    host: str | None = typer.Option(None),
    port: int | None = typer.Option(None, min=1, max=65535),
    protocol: Protocol | None = typer.Option(None),
    insecure_local: bool = typer.Option(False, "--insecure-local", help="Plain MQTT to a broker on this machine."),
    language: str = typer.Option("", help="For set_language."),
) -> None:
    """Send one staff command to a reader and print its reply."""
    args = {"language": language} if language else {}
    try:
        Command(cmd=command, args=args)  # the arguments fit the command (schemas.COMMAND_ARGS)?
    except ValidationError as exc:
        raise typer.BadParameter(f"{command.value}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    broker, config_site = _broker(config, host, port, protocol, insecure_local)
    site = site or config_site or "demo-clinic"
    terminal = ReferenceTerminal(broker, site=site, name=None)  # its own random client id, no session
    terminal.start()
    if not terminal.wait_connected(10):
        terminal.stop()
        raise typer.BadParameter(f"broker {broker.host}:{broker.port} unreachable")
    sent = terminal.send_command(site, reader, command, **args)
    if terminal.wait_for(lambda view: sent.id in view.replies_by_command, 10):
        reply = terminal.view.replies_by_command[sent.id]
        console.print_json(reply.model_dump_json())
        terminal.stop()
        if not reply.ok:
            raise typer.Exit(1)
    else:
        terminal.stop()
        console.print("no reply within 10 s (is the reader online?)")
        raise typer.Exit(1)
