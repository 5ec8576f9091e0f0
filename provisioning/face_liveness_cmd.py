"""`uketsuke face liveness-eval`: APCER per attack type and BPCER, in ISO/IEC 30107-3 terms.

A thin wrapper over :mod:`provisioning.face_liveness_eval`. ``register(app)`` adds the command to the
``face`` typer app (called from :mod:`provisioning.face_cmd`).
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from firmware.face.liveness import LivenessChecker, PassiveLiveness
from firmware.face.pipeline import FacePipeline
from provisioning import face_liveness_eval as ev

console = Console(stderr=True)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "london"


def pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * 100:.1f}%"


def liveness_eval_command(
    data: Annotated[Path, typer.Option("--data", help="folder of <id>/neutral.jpg portraits "
                                       "(default: ../shared/data/faces/london, evaluation only)")] = DEFAULT_DATA,
    limit: Annotated[int | None, typer.Option("--limit", help="use only the first N identities")] = None,
    face_px: Annotated[float | None, typer.Option(
        "--face-px", help="rescale each still so the face is this wide (kiosk-like); default: as is")] = None,
    seed: Annotated[int, typer.Option("--seed", help="simulation and challenge seed")] = 30107,
    model: Annotated[str | None, typer.Option(
        "--model", help="liveness model entry of models/manifest.toml (default: the model the manifest's roles table names for liveness)")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="operating spoof-score threshold (default: the entry's calibrated spoof_score)")] = None,
    sweep: Annotated[str | None, typer.Option(
        "--sweep", help="comma-separated spoof-score thresholds for the trade-off table "
                        "(default: 0.2,0.5,0.9,0.98)")] = None,
    passive_every: Annotated[int | None, typer.Option(
        "--passive-every", help="score every N-th frame with a face (default: the kiosk's schedule)")] = None,
    passive_max: Annotated[int | None, typer.Option(
        "--passive-max", help="score at most N frames per presentation (default: the kiosk's schedule)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write all numbers here")] = None,
) -> None:
    """Simulate bona-fide and attack presentations from portraits and report APCER/BPCER."""
    sources = ev.load_sources(data, limit)
    pipeline = FacePipeline()
    passive = PassiveLiveness.from_manifest(entry=model, threshold=threshold)
    points = ev.PASSIVE_SWEEP if not sweep else tuple(float(v) for v in sweep.split(",") if v.strip())
    console.print(f"liveness evaluation: model {passive.name}, {len(sources)} identities from {data}, "
                  f"face width {'as is' if not face_px else f'{face_px:.0f} px'}, seed {seed}")
    schedule = {k: v for k, v in (("passive_every", passive_every), ("passive_max", passive_max)) if v}
    checker = LivenessChecker(passive, **schedule)
    console.print(f"passive schedule: every {checker.passive_every}th frame with a face, "
                  f"at most {checker.passive_max} per presentation")
    tallies = ev.evaluate(pipeline, checker, sources, seed=seed, face_px=face_px, progress=console.print)
    result = ev.report(tallies, passive.threshold, points)
    operating = result["operating"]

    table = Table(title=f"ISO/IEC 30107-3 rates, passive threshold {passive.threshold:g} "
                        "(95% upper bounds one-sided, Clopper-Pearson)")
    for column in ("presentation", "metric", "n", "errors", "rate", "≤95%", "challenge passed",
                   "passive said live"):
        table.add_column(column)
    for name, row in operating["rows"].items():
        metric = "BPCER" if name == "bona_fide" else "APCER"
        table.add_row(name, metric, str(row["n"]), str(row["errors"]), pct(row["rate"]), pct(row["upper95"]),
                      str(row["challenge_passed"]), str(row["passive_said_live"]))
    Console().print(table)
    worst = operating["worst_apcer"]
    if worst:
        Console().print(f"worst-case APCER: {worst['type']} {pct(worst['rate'])} (≤ {pct(worst['upper95'])})")
    sweep = Table(title="passive threshold sweep")
    sweep.add_column("threshold")
    for name in operating["rows"]:
        sweep.add_column(("BPCER " if name == "bona_fide" else "APCER ") + name)
    for point in result["sweep"]:
        sweep.add_row(f"{point['threshold']:g}", *(pct(r["rate"]) for r in point["rows"].values()))
    Console().print(sweep)
    if json_out:
        payload = {"data": str(data), "identities": len(sources), "face_px": face_px, "seed": seed,
                   "machine": {"platform": platform.platform(), "python": platform.python_version()},
                   "model": passive.name,
                   "passive_schedule": {"every": checker.passive_every, "max": checker.passive_max},
                   **result,
                   # per presentation: challenge, outcome, median and per-frame spoof scores (no image data), so that
                   # any other threshold can be applied afterwards
                   "outcomes": {name: [vars(o) for o in tally.outcomes] for name, tally in tallies.items()}}
        json_out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add ``liveness-eval`` to the ``uketsuke face`` group."""
    app.command("liveness-eval")(liveness_eval_command)
