"""``uketsuke selftest``: open every configured device and the broker, say what is wrong and how to fix it.

Exits non-zero when anything is missing (unlike nfcpy's ``python -m nfc``), so an install script
can stop on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from firmware.config import load_config
from firmware.link.probe import probe_broker
from hal.clock import clock_synchronised
from hal.errors import HalError
from hal.registry import open_device

console = Console()

_ROLES = {"nfc": "nfc", "face_camera": "camera", "card_camera": "camera", "indicators": "indicators",
          "speaker": "speaker"}


def probe_device(role: str, spec: str) -> tuple[bool, str]:
    """Open and start one device; (ok, what happened or how to fix it)."""
    try:
        device = open_device(role, spec)
        device.start()
        description = device.describe()
        device.close()
        return True, description
    except HalError as exc:
        return False, str(exc)


def probe_models() -> list[tuple[str, bool, str]]:
    """Every shipped model file against its manifest's sha256 (face models, and the OCR model loads)."""
    from firmware.card.ocr.model import load_recognizer
    from firmware.errors import ModelError
    from firmware.face.models import Manifest

    rows = []
    try:
        manifest = Manifest()
        for entry in manifest.entries.values():
            manifest.read_verified(entry)
        rows.append(("face models", True, f"{len(manifest.entries)} files match {manifest.path}"))
    except ModelError as exc:
        rows.append(("face models", False, str(exc)))
    try:
        recognizer = load_recognizer(threads=1)
        rows.append(("OCR model", True, f"{recognizer.name} loads"))
    except ModelError as exc:
        rows.append(("OCR model", False, str(exc)))
    return rows


def register(app: typer.Typer) -> None:
    @app.command()
    def selftest(config: Path | None = typer.Option(None, "--config", "-c")) -> None:
        """Probe each device and the broker; exit 1 if anything is missing."""
        cfg = load_config(config)
        table = Table("device", "backend", "result", "detail")
        failures = 0
        for field, role in _ROLES.items():
            spec = getattr(cfg.devices, field)
            ok, detail = probe_device(role, spec)
            failures += not ok
            table.add_row(field, spec, "[green]ok[/]" if ok else "[red]FAIL[/]", detail)
        if cfg.broker.embedded:
            table.add_row("broker", "embedded", "[green]ok[/]", "started by the kiosk")
        else:
            ok, detail = probe_broker(cfg.broker, cfg.site_id, cfg.reader_id)  # settings, TLS both ways, CONNACK
            failures += not ok
            table.add_row("broker", f"{cfg.broker.host}:{cfg.broker.port}", "[green]ok[/]" if ok else "[red]FAIL[/]", detail)
        clock = clock_synchronised(datetime.now(UTC), cfg.clock.source, cfg.clock.not_before)
        failures += not clock.synchronised
        table.add_row("clock", clock.source, "[green]ok[/]" if clock.synchronised else "[red]FAIL[/]", clock.detail)
        from firmware.card.collation_ledger import CollationLedger

        ledger = CollationLedger(cfg.data_dir)
        failures += not ledger.available
        table.add_row("照合番号B ledger", str(cfg.data_dir), "[green]ok[/]" if ledger.available else "[red]FAIL[/]",
                      "card histories readable" if ledger.available else f"{ledger.problem}")
        for name, ok, detail in probe_models():
            failures += not ok
            table.add_row(name, "models/", "[green]ok[/]" if ok else "[red]FAIL[/]", detail)
        console.print(table)
        if failures:
            raise typer.Exit(1)
