"""``uketsuke link …``: the broker side of the link (``link broker-config``: mosquitto.conf + ACL)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import typer
from rich.console import Console

from firmware.link.tls import reader_identity
from provisioning.broker_config import SiteBroker, write

app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True)


def _posix(value: str | None) -> PurePosixPath | None:
    return PurePosixPath(value) if value else None


@app.command("broker-config")
def broker_config(
    site: str = typer.Option(..., help="Site id (config.toml site_id)."),
    reader: list[str] = typer.Option(..., "--reader", "-r", help="A reader id of the site (repeat for each)."),
    terminal_cn: list[str] = typer.Option([], "--terminal-cn",
                                          help="CN of a terminal certificate (repeatable; default terminal.SITE)."),
    out: Path = typer.Option(..., "--out", file_okay=False, help="Folder to write mosquitto.conf and acl into."),
    port: int = typer.Option(8883, min=1, max=65535, help="TLS listener port."),
    bind: str = typer.Option("", help="Address to listen on (default: every interface)."),
    install_dir: str = typer.Option("/etc/mosquitto/uketsuke",
                                    help="Where acl (and, by default, certs/) will be on the broker machine."),
    ca_file: str | None = typer.Option(None, help="Site CA on the broker (default INSTALL_DIR/certs/ca.crt)."),
    cert_file: str | None = typer.Option(None, help="Broker certificate (default INSTALL_DIR/certs/broker.crt)."),
    key_file: str | None = typer.Option(None, help="Broker key (default INSTALL_DIR/certs/broker.key)."),
    crl_file: str | None = typer.Option(None, help="CRL of the site CA: revoked devices are refused."),
    persistence_dir: str = typer.Option("/var/lib/mosquitto", help="mosquitto's persistence folder."),
    log_dest: str = typer.Option("syslog", help="mosquitto log_dest (syslog, stderr, none, 'file /path')."),
) -> None:
    """Write a production mosquitto.conf (mutual TLS) and its per-device ACL for one site."""
    try:
        layout = SiteBroker(site=site, readers=tuple(reader), terminals=tuple(terminal_cn), port=port, bind=bind,
                            install_dir=PurePosixPath(install_dir), ca_file=_posix(ca_file),
                            cert_file=_posix(cert_file), key_file=_posix(key_file), crl_file=_posix(crl_file),
                            persistence_dir=PurePosixPath(persistence_dir), log_dest=log_dest)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    conf, acl = write(layout, out)
    console.print(f"wrote {conf} and {acl}", highlight=False, soft_wrap=True)
    console.print(f"install: {acl.name} → {layout.acl_file}, {conf.name} → /etc/mosquitto/mosquitto.conf; "
                  f"certificates in {layout.path('ca_file').parent}; then systemctl restart mosquitto",
                  highlight=False, soft_wrap=True)
    names = [reader_identity(site, r) for r in reader] + list(layout.terminal_names)
    console.print(f"certificate CNs the ACL names: {', '.join(names)}", highlight=False, soft_wrap=True)
