"""The production mosquitto configuration for one site: a mutual-TLS listener and a per-device ACL.

Pure functions (:func:`mosquitto_conf`, :func:`acl`, :func:`write`); ``uketsuke link broker-config``
(``provisioning/link_cmd.py``) wraps them. Option names are those of mosquitto 2.0 (Debian
Bookworm's 2.0.11, ``man mosquitto.conf``):

- one TLS listener (``cafile``/``certfile``/``keyfile``, ``tls_version tlsv1.2`` as the minimum) with
  ``require_certificate true``: no device certificate from the site's CA, no connection;
- ``use_identity_as_username true``: the certificate's CN is the username the ACL names, so the
  identity cannot be claimed with a password; ``allow_anonymous false``;
- ``acl_file``: one ``user`` block per device, with explicit topic lines generated from the reader
  list and :mod:`firmware.link.topics` (no ``%u`` patterns: a CN holds dots, not slashes, and an
  explicit line says exactly what each device may do). mosquitto checks ``write`` on publish (an
  MQTT 5 client gets PUBACK "Not authorized") and ``read`` on delivery (it grants a SUBSCRIBE it
  will never deliver to);
- ``max_packet_size``: the largest payload the link carries (``MAX_RESULT_BYTES``) plus room for the
  topic and properties; a client sending a larger packet is disconnected;
- ``persistence``: the terminal's persistent session (results queued while it is away) survives a
  broker restart.

Device names follow :func:`firmware.link.tls.reader_identity` / :func:`terminal_identity`
(``reader.{site}.{reader}``, ``terminal.{site}``); the certificates are issued with those CNs
(issue 13's ``uketsuke ca issue``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import TypeAdapter, ValidationError

from firmware.config import Identifier
from firmware.link.limits import MAX_RESULT_BYTES
from firmware.link.schemas import topic
from firmware.link.tls import reader_identity, terminal_identity
from firmware.link.topics import WITH_SUBTOPIC, reader_reads, sent_by, terminal_reads

#: Room beyond the largest payload for the fixed header, the topic and MQTT 5 properties
#: (response topic, 64-byte correlation data): our topics are under 200 bytes.
PACKET_OVERHEAD_BYTES = 1024
MAX_PACKET_BYTES = MAX_RESULT_BYTES + PACKET_OVERHEAD_BYTES
#: A CN the ACL may name: one token, no whitespace (mosquitto reads ``user <name>`` to the line's end).
_CN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ID = TypeAdapter(Identifier)
_PATH = re.compile(r"^/[^\s#]*$")


@dataclass(frozen=True)
class SiteBroker:
    """One site's broker: who connects, and where its files are on the broker machine."""

    site: str
    readers: tuple[str, ...]
    #: The terminal certificates' CNs (default: ``terminal.{site}``).
    terminals: tuple[str, ...] = ()
    port: int = 8883
    #: Address to listen on ("" = every interface).
    bind: str = ""
    install_dir: PurePosixPath = PurePosixPath("/etc/mosquitto/uketsuke")
    #: CA of the device certificates (and of the broker's own, usually the same site CA).
    ca_file: PurePosixPath | None = None
    cert_file: PurePosixPath | None = None
    key_file: PurePosixPath | None = None
    #: A CRL from the site CA: a revoked device (a stolen kiosk) is refused at the handshake.
    crl_file: PurePosixPath | None = None
    persistence_dir: PurePosixPath = PurePosixPath("/var/lib/mosquitto")
    #: mosquitto ``log_dest`` (``syslog``, ``stderr``, ``file /path``, ``none``).
    log_dest: str = "syslog"

    def __post_init__(self) -> None:
        _check_id("site", self.site)
        if not self.readers:
            raise ValueError("give at least one reader id (--reader)")
        for reader in self.readers:
            _check_id("reader", reader)
        if len(set(self.readers)) != len(self.readers):
            raise ValueError("a reader id is given twice")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535, not {self.port}")
        if self.bind and not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", self.bind):
            raise ValueError(f"bind address {self.bind!r} is not a host name or address")
        for cn in self.terminal_names:
            if not _CN.fullmatch(cn):
                raise ValueError(f"terminal CN {cn!r}: letters, digits, '.', '_' and '-' only (1-128)")
            if cn in {reader_identity(self.site, r) for r in self.readers}:
                raise ValueError(f"terminal CN {cn!r} is a reader's name: a terminal needs its own certificate")
        for name in ("install_dir", "ca_file", "cert_file", "key_file", "crl_file", "persistence_dir"):
            value = getattr(self, name)
            if value is not None and not _PATH.fullmatch(str(value)):
                raise ValueError(f"{name} must be an absolute path without spaces or '#', not {str(value)!r}")
        if not re.fullmatch(r"(syslog|stderr|stdout|none|topic|dlt|file /[^\s#]+)", self.log_dest):
            raise ValueError(f"log_dest {self.log_dest!r}: syslog, stderr, stdout, none or 'file /path'")

    @property
    def terminal_names(self) -> tuple[str, ...]:
        return self.terminals or (terminal_identity(self.site),)

    @property
    def acl_file(self) -> PurePosixPath:
        return self.install_dir / "acl"

    def path(self, name: str) -> PurePosixPath:
        """Where a TLS file is on the broker (given, or ``install_dir/certs/…``)."""
        default = {"ca_file": "ca.crt", "cert_file": "broker.crt", "key_file": "broker.key"}[name]
        return getattr(self, name) or self.install_dir / "certs" / default


def _check_id(kind: str, value: str) -> None:
    try:
        _ID.validate_python(value)
    except ValidationError:
        raise ValueError(f"{kind} id {value!r}: letters, digits, '-' and '_' (1-64, first a letter or digit, "
                         "not 12 digits), as in config.toml") from None


def _lines(access: str, site: str, reader: str, leaves) -> list[str]:
    lines = []
    for leaf in leaves:
        lines.append(f"topic {access} {topic(site, reader, leaf)}")
        if leaf in WITH_SUBTOPIC:
            lines.append(f"topic {access} {topic(site, reader, leaf)}/+")
    return lines


def acl(layout: SiteBroker) -> str:
    """The ``acl_file``: each reader writes only its own leaves and reads only the terminal's to it."""
    site = layout.site
    out = [f"# uketsuke broker ACL for site {site}: generated by `uketsuke link broker-config`; regenerate, "
           "do not edit.",
           "# No topic lines before the first user: anonymous clients (refused anyway) get nothing.", ""]
    # The same leaves for every reader: what it only sends, sends and reads back, only reads.
    writes = [leaf for leaf in sent_by("reader") if leaf not in reader_reads()]
    both = [leaf for leaf in sent_by("reader") if leaf in reader_reads()]
    reads = [leaf for leaf in reader_reads() if leaf not in both]
    for reader in layout.readers:
        out += [f"# kiosk {site}/{reader}", f"user {reader_identity(site, reader)}",
                *_lines("write", site, reader, writes), *_lines("readwrite", site, reader, both),
                *_lines("read", site, reader, reads), ""]
    for cn in layout.terminal_names:
        out += [f"# terminal of site {site}: commands and answers to every reader of the site, reads what they send",
                f"user {cn}", *_lines("write", site, "+", sent_by("terminal")),
                *_lines("read", site, "+", terminal_reads()), ""]
    return "\n".join(out)


def mosquitto_conf(layout: SiteBroker) -> str:
    """The whole ``mosquitto.conf`` (it replaces Debian's, which sets persistence and logging too)."""
    listener = f"listener {layout.port}" + (f" {layout.bind}" if layout.bind else "")
    lines = [
        f"# uketsuke production broker for site {layout.site}: generated by `uketsuke link broker-config`.",
        "# Install as /etc/mosquitto/mosquitto.conf (docs/notes/link-security.md); regenerate, do not edit.",
        "",
        "allow_anonymous false",
        f"acl_file {layout.acl_file}",
        f"# the largest link payload ({MAX_RESULT_BYTES} bytes, a result) + {PACKET_OVERHEAD_BYTES} for topic and "
        "properties; larger: disconnected",
        f"max_packet_size {MAX_PACKET_BYTES}",
        "persistence true",
        f"persistence_location {layout.persistence_dir}/",
        f"log_dest {layout.log_dest}",
        "",
        "# mutual TLS: only devices with a certificate from the site CA connect; the CN is the ACL's user",
        listener,
        "protocol mqtt",
        f"cafile {layout.path('ca_file')}",
        f"certfile {layout.path('cert_file')}",
        f"keyfile {layout.path('key_file')}",
        *([f"crlfile {layout.crl_file}"] if layout.crl_file else []),
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        "",
    ]
    return "\n".join(lines)


def write(layout: SiteBroker, out_dir: Path) -> list[Path]:
    """Write ``mosquitto.conf`` and ``acl`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("mosquitto.conf", mosquitto_conf(layout)), ("acl", acl(layout))):
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
