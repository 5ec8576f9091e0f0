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

from firmware.card.certificate import GRACE_RULES
from firmware.card.cvc import CvcError, load_issuer_keys
from firmware.config import Broker, Config, load_config
from firmware.errors import ModelError
from firmware.link.schemas import Command, CommandName
from terminal.app import ReferenceTerminal
from terminal.clinic_files import DEFAULT_INSTITUTION_CODE, DEFAULT_ROOT, ClinicFiles
from terminal.registry import Registry, RegistryError
from terminal.trust import TrustAnchorError, load_trust_anchors
from terminal.verify import kiosk_face_threshold

app = typer.Typer(no_args_is_help=True)
console = Console()


class Encoding(StrEnum):
    shift_jis = "shift_jis"
    utf8 = "utf-8"


class Protocol(StrEnum):
    v5 = "5"
    v311 = "3.1.1"


#: The kiosk's grace rules as CLI choices (one list: firmware.card.certificate.GRACE_RULES).
GraceRule = StrEnum("GraceRule", {rule: rule for rule in GRACE_RULES})


def _broker(config: Path | None, host: str | None, port: int | None, protocol: Protocol | None,
            insecure_local: bool = False) -> tuple[Broker, Config | None]:
    """The broker (and the loaded config, if any) from ``--config``, with any flag given overriding it.

    TLS settings (the terminal's own certificate) come from the config's ``[broker]``; without a
    config only ``--insecure-local`` (a plain broker on this machine) can connect.
    """
    cfg = load_config(config) if config else None
    base = cfg.broker if cfg else Broker()
    update = {key: value for key, value in (("host", host), ("port", port),
                                            ("protocol", protocol.value if protocol else None),
                                            ("insecure_local", insecure_local or None)) if value is not None}
    broker = Broker.model_validate(base.model_dump() | update)
    return broker, cfg


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
    staff_port: int | None = typer.Option(None, "--staff-port", min=0, max=65535,
                                          help="Serve the staff page on this port (0: any free one); needs "
                                               "--staff-password-file. See docs/notes/staff-page.md."),
    staff_password_file: Path | None = typer.Option(None, "--staff-password-file",
                                                    help="The staff's passwords: a password (user 'staff'), or "
                                                         "'user:password' / 'user:<hash from staff-password>' "
                                                         "lines."),
    staff_host: str = typer.Option("127.0.0.1", "--staff-host",
                                   help="Address the staff page listens on (default: this machine only)."),
    trust_anchors: list[str] = typer.Option([], "--trust-anchors", metavar="PEM|DIR|jlis",
                                            help="CA certificates the user-authentication certificate must be "
                                                 "issued by (repeat for several): a PEM file, a folder of them, "
                                                 "or 'jlis' for the J-LIS roots shipped in terminal/trust/jlis/. "
                                                 "Without any, results carry a 'chain unverified' problem."),
    grace_rule: GraceRule | None = typer.Option(None, help="The kiosk's grace boundary after a certificate's "
                                                           "expiry (default: the config's card.grace_rule, "
                                                           "else months)."),
    min_face_threshold: float | None = typer.Option(None, min=-1.0, max=1.0,
                                                    help="The lowest face threshold a result may claim (default: "
                                                         "the kiosk's calibrated one in models/manifest.toml)."),
) -> None:
    """Show every reader's status and results as they arrive, answering requests and acknowledging results."""
    accounts = _staff_accounts(staff_port, staff_password_file)
    broker, cfg = _broker(config, host, port, protocol, insecure_local)
    site = site or (cfg.site_id if cfg else "") or "+"
    printer = None if as_json else (lambda line: console.print(line, markup=False, highlight=False))
    try:
        fixture = Registry.load(registry) if registry else None
        keys = load_issuer_keys(issuer_keys) if issuer_keys else None
        anchors = load_trust_anchors(trust_anchors)
        threshold = min_face_threshold if min_face_threshold is not None else kiosk_face_threshold()
    except (RegistryError, CvcError, TrustAnchorError) as exc:
        raise typer.BadParameter(str(exc)) from None
    except ModelError as exc:
        raise typer.BadParameter(f"{exc}; or give --min-face-threshold") from None
    rule = grace_rule.value if grace_rule else (cfg.card.grace_rule if cfg else "months")
    fixture = fixture or Registry()
    try:
        clinic = None if no_files else ClinicFiles(files, fixture, institution_code=institution_code,
                                                   encoding=encoding.value, report=_thread_report(printer))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    terminal = ReferenceTerminal(broker, site=site, printer=printer, name=name, registry=fixture, issuer_keys=keys,
                                 files=clinic, trust_anchors=anchors, grace_rule=rule, min_face_threshold=threshold)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before anything starts: a SIGTERM always cleans up
    terminal.start()  # an unwritable files folder raises ClinicFilesError: one line from the CLI's main()
    if clinic is not None and not as_json:
        console.print(f"clinic files in {files.resolve()}/{{face,req,res}}", highlight=False)
    if not as_json:
        console.print(f"proofs: {len(anchors)} trust anchor(s), grace rule {rule}, face threshold ≥ {threshold:g}"
                      + ("" if anchors else " (no anchors: every result says 'chain unverified')"), highlight=False)
    staff = None
    if accounts is not None:
        from terminal.staff import StaffServerError, serve

        try:
            staff = serve(terminal, accounts, staff_host, staff_port, report=_thread_report(printer))
        except StaffServerError:
            terminal.stop()
            raise
        if not as_json:
            console.print(f"staff page {staff.url} (users: {', '.join(accounts.users)})", highlight=False)
    if not terminal.wait_connected(10) and not as_json:
        console.print(f"waiting for the broker at {broker.host}:{broker.port} …")

    def all_arrived(view) -> bool:
        ids = {r.id for r in view.results}
        return bool(count) and len(ids) >= count and ids <= view.acknowledged

    try:
        while not stop.is_set() and not terminal.wait_for(all_arrived, 0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if staff is not None:
            staff.stop()
        terminal.stop()
    if as_json:
        with terminal.locked():
            ids = {r.id for r in terminal.view.results}
            acknowledged = len(ids & terminal.view.acknowledged)
        print(json.dumps({"checkins": len(ids), "acknowledged": acknowledged, "pending": len(ids) - acknowledged}),
              flush=True)


def _staff_accounts(port: int | None, password_file: Path | None):
    """The staff accounts when the page is wanted (both options), else None; one clear error otherwise."""
    if port is None and password_file is None:
        return None
    if port is None or password_file is None:
        raise typer.BadParameter("the staff page needs both --staff-port and --staff-password-file")
    from terminal.staff import StaffAccounts, StaffConfigError

    try:
        return StaffAccounts.load(password_file)
    except StaffConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("staff-password")
def staff_password(
    user: str = typer.Option("staff", help="The staff member's user name (a-z 0-9 . _ -)."),
) -> None:
    """Print a password file line for the staff page (the password itself is not kept anywhere)."""
    from terminal.staff.accounts import MIN_PASSWORD_LENGTH, USER_PATTERN, hash_password

    if not USER_PATTERN.match(user):
        raise typer.BadParameter("the user name must be 1-32 of a-z 0-9 . _ -")
    password = typer.prompt("password", hide_input=True, confirmation_prompt=True, err=True)  # stdout: the line
    if len(password) < MIN_PASSWORD_LENGTH:
        raise typer.BadParameter(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    print(f"{user}:{hash_password(password)}")


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
    broker, cfg = _broker(config, host, port, protocol, insecure_local)
    site = site or (cfg.site_id if cfg else "") or "demo-clinic"
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
