"""`uketsuke face …` commands: evaluate verification on a data set, and calibrate the threshold.

Thin wrappers over :mod:`provisioning.face_eval` and :mod:`provisioning.face_metrics`. The data sets
(e.g. ../shared/data/faces) are for evaluation only; the commands say so when they are missing.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from firmware.errors import ModelError
from firmware.face.models import Manifest, add_embedding_model, models_dir, set_role, write_thresholds
from firmware.face.pipeline import FacePipeline
from provisioning import face_eval, face_liveness_cmd
from provisioning.face_metrics import Scores, bootstrap, paired_difference, roc_curve, summarise

app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


class Protocol(enum.StrEnum):
    all_pairs = "all-pairs"
    card_vs_live = "card-vs-live"


def far_key(far: float) -> str:
    """1e-4 -> "far_1e-4" (the manifest's key)."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"far_{mantissa}e{int(exponent)}"


def run_protocol(backend, data, protocol: Protocol, frames: int) -> dict[str, Scores]:
    say = console.print
    if protocol is Protocol.all_pairs:
        return {"single": face_eval.all_pairs(backend, data, progress=say)}
    return face_eval.card_vs_live(backend, data, frames=frames, progress=say)


def fmt(value, pct=True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value * 100:.1f}" if pct else f"{value:.3f}"


def fmt_ci(ci, pct=True) -> str:
    return "n/a" if not ci else f"[{fmt(ci[0], pct)}, {fmt(ci[1], pct)}]"


@app.command("eval")
def eval_command(
    data: Annotated[list[Path], typer.Option("--data", help="folder of identity folders (repeatable)")],
    protocol: Annotated[Protocol, typer.Option("--protocol")] = Protocol.card_vs_live,
    frames: Annotated[int, typer.Option("--frames", help="frames fused per probe (card-vs-live)")] = 5,
    baseline: Annotated[bool, typer.Option("--baseline", help="also run the dlib ResNet baseline")] = False,
    rounds: Annotated[int, typer.Option("--rounds", help="bootstrap rounds (identities resampled)")] = 500,
    json_out: Annotated[Path | None, typer.Option("--json", help="write all numbers and the ROC here")] = None,
    models: Annotated[list[str] | None, typer.Option(
        "--model", help="embedding model(s) from the manifest (repeatable; default: the kiosk's)")] = None,
) -> None:
    """ROC, TAR at FAR 1e-2/1e-3/1e-4, EER, with confidence intervals from resampled identities."""
    kiosk = face_eval.TfliteBackend(FacePipeline())
    try:
        kiosk_threshold = kiosk.pipeline.manifest.threshold("embedding")
    except ModelError:
        kiosk_threshold = math.nan
    backends = [kiosk]
    for name in models or []:
        if name != kiosk.name:
            manifest = Manifest()
            manifest.roles["embedding"] = name
            backends.append(face_eval.TfliteBackend(FacePipeline(manifest)))
    if baseline:
        backends.append(face_eval.DlibBackend())
    report = {"protocol": protocol.value, "frames": frames, "runs": []}
    table = Table(title=f"face verification, {protocol.value} (95% CI, identities resampled)")
    for col in ("data", "model", "probe", "ids", "gen/imp", "fail", "TAR@1e-2", "TAR@1e-3",
                "TAR@1e-4", "EER", "d'", "thr@1e-4", "TAR/FAR at kiosk thr"):
        table.add_column(col)
    differences = []
    for folder in data:
        dataset = face_eval.load_dataset(folder)
        by_backend: list[dict[str, Scores]] = []
        for backend in backends:
            by_backend.append(run_protocol(backend, dataset, protocol, frames))
            for probe, scores in by_backend[-1].items():
                summary = summarise(scores)
                ci = bootstrap(scores, rounds=rounds)
                at_kiosk = "–"
                if backend is kiosk and not math.isnan(kiosk_threshold):
                    tar_k, far_k = (float(np.mean(scores.genuine > kiosk_threshold)),
                                    float(np.mean(scores.impostor > kiosk_threshold)))
                    summary["at_kiosk_threshold"] = {"threshold": kiosk_threshold, "tar": tar_k, "far": far_k}
                    at_kiosk = f"{kiosk_threshold:.3f}: {fmt(tar_k)} / {far_k:.1e}"
                groups = face_eval.identity_groups(dataset)
                threshold = summary["threshold"]["0.001"]
                report["runs"].append({"data": str(folder), "aligned": dataset.aligned, "model": backend.name,
                                       "probe": probe, **summary, "ci95": ci,
                                       "groups_at_own_threshold_far_1e-3": face_eval.group_breakdown(
                                           scores, groups, threshold) if groups and threshold == threshold else None,
                                       "roc": roc_curve(scores.genuine, scores.impostor, points=60)})
                t = summary["tar"]
                table.add_row(folder.name, backend.name, probe, str(summary["n_identities"]),
                              f"{summary['n_genuine']}/{summary['n_impostor']}",
                              str(sum(summary["failures"].values())),
                              f"{fmt(t['0.01'])} {fmt_ci(ci['tar@0.01'])}",
                              f"{fmt(t['0.001'])} {fmt_ci(ci['tar@0.001'])}",
                              f"{fmt(t['0.0001'])} {fmt_ci(ci['tar@0.0001'])}",
                              f"{fmt(summary['eer'])} {fmt_ci(ci['eer'])}", fmt(summary["d_prime"], pct=False),
                              fmt(summary["threshold"]["0.0001"], pct=False), at_kiosk)
            fused = sorted(k for k in by_backend[-1] if k.endswith(f"-of-{frames}"))
            if len(fused) == 2:  # mean-of-N minus best-of-N on the same probe groups
                diff = paired_difference(by_backend[-1][fused[1]], by_backend[-1][fused[0]], rounds=rounds)
                differences.append({"data": str(folder), "probe": f"{backend.name} {fused[1]}",
                                    "minus": fused[0], "tar_difference": diff,
                                    "label": f"{backend.name}: {fused[1]} − {fused[0]}"})
                report["paired"] = differences
        for other in range(1, len(by_backend)):  # kiosk minus each other system, same identity resamples
            for probe in by_backend[0]:
                diff = paired_difference(by_backend[0][probe], by_backend[other][probe], rounds=rounds)
                differences.append({"data": str(folder), "probe": probe,
                                    "minus": backends[other].name, "tar_difference": diff,
                                    "label": f"{probe}: {backends[0].name} − {backends[other].name}"})
                report["paired"] = differences
    Console(width=220).print(table)
    for d in differences:
        cells = ", ".join(f"@{far}: {fmt(v['difference'])} pts {fmt_ci(v['ci'])}"
                          for far, v in d["tar_difference"].items())
        Console(width=220).print(f"{Path(d['data']).name} {d['label']}: TAR {cells}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1))


@app.command("calibrate")
def calibrate_command(
    far: Annotated[float, typer.Option("--far", help="false-accept rate the threshold must meet")] = 1e-4,
    data: Annotated[list[Path] | None, typer.Option(
        "--data", help="evaluation folders, impostor scores pooled (default: ../shared/data/faces/*)")] = None,
    protocol: Annotated[Protocol, typer.Option("--protocol")] = Protocol.card_vs_live,
    model: Annotated[str | None, typer.Option(
        "--model", help="manifest entry to calibrate (default: the embedding role's)")] = None,
    manifest_dir: Annotated[Path | None, typer.Option("--models-dir", help="models folder")] = None,
    policy: Annotated[str, typer.Option(
        "--policy", help="strictest: meet the FAR on every folder; pooled: on all impostors together")] = "strictest",
) -> None:
    """Find the cosine threshold at ``--far`` on single-frame scores and write it into the manifest.

    The threshold must meet the FAR on *every* folder (the strictest one wins): the kiosk's users
    resemble none of the evaluation sets exactly, and studio-like sets with one background and one
    lighting (as at a kiosk) give higher impostor scores than varied web photos.
    """
    data = data or [DEFAULT_DATA / "aligned112", DEFAULT_DATA / "london"]
    manifest = Manifest(manifest_dir)
    if model:
        manifest.roles["embedding"] = model
    pipeline = FacePipeline(manifest)
    backend = face_eval.TfliteBackend(pipeline)
    per_folder: list[tuple[str, Scores, float]] = []
    for folder in data:
        scores = run_protocol(backend, face_eval.load_dataset(folder), protocol, frames=1)["single"]
        threshold = summarise(scores, fars=(far,))["threshold"][f"{far:g}"]
        if math.isnan(threshold):
            raise face_eval.DataMissing(f"{folder}: {scores.impostor.size} impostor comparisons cannot measure "
                                        f"FAR {far:g}; need at least {math.ceil(1 / far)}: add data")
        per_folder.append((folder.name, scores, threshold))
    if policy == "strictest":
        threshold = max(t for *_, t in per_folder)
    elif policy == "pooled":
        threshold = summarise(Scores(np.concatenate([s.genuine for _, s, _ in per_folder]), np.zeros(0, int),
                                     np.concatenate([s.impostor for _, s, _ in per_folder]), np.zeros((0, 2), int),
                                     0), fars=(far,))["threshold"][f"{far:g}"]
    else:
        raise typer.BadParameter(f"--policy must be strictest or pooled, not {policy!r}")
    parts = []
    for name, scores, own in per_folder:
        tar = float(np.mean(scores.genuine > threshold))
        far_here = float(np.mean(scores.impostor > threshold))
        ci = bootstrap(scores, fars=(far,), rounds=200)[f"threshold@{far:g}"]
        parts.append(f"{name}: own threshold {own:.3f} (95% CI {fmt_ci(ci, pct=False)}), at the chosen one "
                     f"TAR {tar:.3f} FAR {far_here:.1e} over {scores.impostor.size} impostor comparisons")
    note = (f"{dt.date.today().isoformat()} {protocol.value} single frame, policy {policy}: " + "; ".join(parts))
    entry = manifest.entry_for("embedding")
    stored = math.ceil(threshold * 1e6) / 1e6  # round up: never accept a score the calibration rejected
    write_thresholds(manifest.path, entry.name, {far_key(far): stored, "calibrated": note})
    Console().print(f"{entry.name}: {far_key(far)} = {stored:.6f} written to {manifest.path}")
    for part in parts:
        Console().print(f"  {part}")


@app.command("add-model")
def add_model_command(
    file: Annotated[Path, typer.Argument(help="the clinic's embedding model (.tflite, aligned 112² faces)")],
    name: Annotated[str, typer.Option("--name", help="manifest entry name (letters, digits, _)")],
    input_mean: Annotated[float, typer.Option("--mean", help="subtracted from each pixel")] = 127.5,
    input_scale: Annotated[float, typer.Option("--scale", help="multiplied after the mean")] = 1 / 128,
    channel_order: Annotated[str, typer.Option("--channel-order", help="RGB or BGR")] = "RGB",
    licence: Annotated[str, typer.Option("--licence", help="licence of the weights")] = "clinic-supplied",
    provenance: Annotated[str, typer.Option("--provenance", help="who trained it, on what")] = "unknown",
    use: Annotated[bool, typer.Option("--use", help="make it the embedding model the kiosk uses")] = False,
    manifest_dir: Annotated[Path | None, typer.Option("--models-dir", help="models folder")] = None,
) -> None:
    """Drop in another embedding model: copy it, hash it into the manifest (uncalibrated), optionally use it.

    Then run `uketsuke face calibrate --far 1e-4 --model NAME`: the kiosk refuses an uncalibrated model.
    """
    directory = manifest_dir or models_dir()
    entry = add_embedding_model(directory, file, name, input_mean=input_mean, input_scale=input_scale,
                                channel_order=channel_order, licence=licence, provenance=provenance)
    if use:
        set_role(directory / "manifest.toml", "embedding", entry.name)
    Console().print(f"added [models.{entry.name}] ({entry.file}, sha256 {entry.sha256[:16]}…)"
                    f"{', now the embedding model' if use else ''}; next: uketsuke face calibrate --far 1e-4 "
                    f"--model {entry.name}")


@app.command("use-model")
def use_model_command(
    name: Annotated[str, typer.Argument(help="manifest entry of an embedding model")],
    manifest_dir: Annotated[Path | None, typer.Option("--models-dir", help="models folder")] = None,
) -> None:
    """Make a calibrated embedding model the one the kiosk uses ([roles] embedding)."""
    manifest = Manifest(manifest_dir)
    entry = manifest.entries.get(name)
    if entry is None or entry.role != "embedding":
        raise ModelError(f"{name!r} is not an embedding model in {manifest.path} "
                         f"(embedding models: {sorted(n for n, e in manifest.entries.items() if e.role == 'embedding')})")
    manifest.read_verified(entry)
    manifest.roles["embedding"] = name
    manifest.threshold("embedding")  # refuses an uncalibrated model
    set_role(manifest.path, "embedding", name)
    Console().print(f"the kiosk now uses {name} (threshold far_1e-4 = {manifest.threshold('embedding'):.6f})")


# `uketsuke face liveness-eval` lives beside the liveness code (provisioning/face_liveness_cmd.py).
face_liveness_cmd.register(app)
