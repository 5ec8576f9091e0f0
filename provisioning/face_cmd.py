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
from firmware.face.models import (
    TARGET_FAR,
    Manifest,
    add_embedding_model,
    models_dir,
    rule_threshold_key,
    set_role,
    write_thresholds,
)
from firmware.face.pipeline import FacePipeline
from firmware.face.session import DecisionRule
from provisioning import face_eval, face_liveness_cmd
from provisioning.face_metrics import Scores, bootstrap, paired_difference, rates_at, roc_curve, summarise

app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


class Protocol(enum.StrEnum):
    kiosk = "kiosk"
    all_pairs = "all-pairs"
    card_vs_live = "card-vs-live"
    face_choice = "face-choice"


def far_key(far: float) -> str:
    """1e-4 -> "single_far_1e-4" (the manifest's key of the single-frame threshold)."""
    return rule_threshold_key(frames=1, far=far)


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
    protocol: Annotated[Protocol, typer.Option("--protocol")] = Protocol.kiosk,
    frames: Annotated[int, typer.Option("--frames", help="frames fused per probe (the kiosk fuses 5)")] = 5,
    baseline: Annotated[bool, typer.Option("--baseline", help="also run the dlib ResNet baseline")] = False,
    rounds: Annotated[int, typer.Option("--rounds", help="bootstrap rounds (identities resampled)")] = 500,
    json_out: Annotated[Path | None, typer.Option("--json", help="write all numbers and the ROC here")] = None,
    models: Annotated[list[str] | None, typer.Option(
        "--model", help="embedding model(s) from the manifest (repeatable; default: the kiosk's)")] = None,
) -> None:
    """FAR/FRR of the kiosk's decision at its threshold (--protocol kiosk, the default); ROC, TAR at
    FAR 1e-2/1e-3/1e-4, EER with CIs from resampled identities (card-vs-live, all-pairs); the face
    choice with a bystander in the frame (face-choice)."""
    if protocol is Protocol.kiosk:
        return kiosk_eval(data, frames, json_out)
    if protocol is Protocol.face_choice:
        return face_choice_eval(data, frames, json_out)
    kiosk = face_eval.TfliteBackend(FacePipeline())
    try:
        kiosk_threshold = kiosk.pipeline.manifest.threshold("embedding", far_key(TARGET_FAR))
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
    report = {"protocol": protocol.value, "frames": frames, "machine": face_eval.machine(),
              "single_frame_threshold": kiosk_threshold, "runs": []}
    table = Table(title=f"face verification, {protocol.value} (95% CI, identities resampled)")
    for col in ("data", "model", "probe", "ids", "gen/imp", "fail", "TAR@1e-2", "TAR@1e-3",
                "TAR@1e-4", "EER", "d'", "thr@1e-4", "TAR/FAR at single-frame thr"):
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
                    summary["at_single_frame_threshold"] = {"threshold": kiosk_threshold, "tar": tar_k, "far": far_k}
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


def kiosk_rule_runs(pipeline: FacePipeline, data: list[Path], rule: DecisionRule) -> dict[str, dict[str, Scores]]:
    """The kiosk rule's scores per folder: calibration identities, held-out identities, all."""
    return {folder.name: face_eval.kiosk_rule_evaluation(pipeline, face_eval.load_dataset(folder), rule,
                                                         progress=console.print) for folder in data}


def fmt_rates(r: dict) -> tuple[str, str]:
    """("FAR k/n [CI]", "FRR k/n [CI]") for the console."""
    far = (f"{r['false_accepts']}/{r['impostor_comparisons']} = {r['far']:.1e} "
           f"[{r['far_ci95'][0]:.1e}, {r['far_ci95'][1]:.1e}]")
    if r["false_accepts"] == 0:
        far += f"; ≤ {r['far_upper95_rule_of_three']:.1e} (rule of 3)"
    frr = (f"{r['false_rejects']}/{r['genuine_comparisons']} = {r['frr'] * 100:.1f}% "
           f"[{r['frr_ci95'][0] * 100:.1f}, {r['frr_ci95'][1] * 100:.1f}]")
    return far, frr


def kiosk_eval(data: list[Path], frames: int, json_out: Path | None) -> None:
    """FAR and FRR of the kiosk's decision (FaceSession's rule) at the manifest's threshold for that rule,
    on calibration and held-out identities, beside the single-frame threshold it replaced."""
    pipeline = FacePipeline()
    rule = DecisionRule("mean", frames)
    thresholds = {}
    for label, key in (("kiosk rule", rule.threshold_key()), ("single-frame", far_key(TARGET_FAR))):
        value = pipeline.manifest.entry_for("embedding").thresholds.get(key)
        if value is not None:
            thresholds[f"{label} ({key})"] = float(value)
    if not thresholds:
        raise ModelError(f"the manifest has no {rule.threshold_key()} threshold: run uketsuke face calibrate")
    runs = kiosk_rule_runs(pipeline, data, rule)
    # what calibrating on the calibration halves alone would give (strictest of their own thresholds,
    # the highest impostor score where a half cannot measure the FAR): shown to test it on held-out ids
    thresholds["calibration halves only"] = max(face_eval.threshold_for(sets["calibration"], TARGET_FAR)[0]
                                                for sets in runs.values())
    report = {"protocol": "kiosk", "rule": rule.name, "frames": frames, "far_target": TARGET_FAR,
              "machine": face_eval.machine(), "model": pipeline.embedding_entry.name, "thresholds": thresholds,
              "split": "identities halved with seed 20261125 (calibration / held_out); impostor comparisons "
                       "only within a half", "runs": []}
    table = Table(title=f"kiosk decision ({rule.name} good frames, gates as FaceSession), FAR target "
                        f"{TARGET_FAR:g}; exact 95% CIs")
    for col in ("data", "identities", "threshold", "FAR (false accepts / impostor comparisons)",
                "FRR (false rejects / genuine)", "own thr@1e-4"):
        table.add_column(col)
    for name, sets in runs.items():
        for subset, scores in sets.items():
            own, measurable = face_eval.threshold_for(scores, TARGET_FAR)
            row = {"data": name, "identities": subset, "n_identities": scores.n_identities,
                   "own_threshold": own, "own_threshold_measurable": measurable,
                   "max_impostor": float(scores.impostor.max()), "failures": scores.failures, "at": {}}
            for label, thr in thresholds.items():
                rates = rates_at(scores, thr, TARGET_FAR)
                row["at"][label] = rates
                far_s, frr_s = fmt_rates(rates)
                table.add_row(name, f"{subset} ({scores.n_identities})", f"{label} {thr:.4f}", far_s, frr_s,
                              f"{own:.4f}" + ("" if measurable else " (unmeasurable: max impostor)"))
                if not rates["enough_impostors_for_target"]:
                    row.setdefault("note", f"{rates['impostor_comparisons']} impostor comparisons cannot show "
                                           f"FAR {TARGET_FAR:g} (needs ≥ {int(3 / TARGET_FAR)} with no false "
                                           "accept); the rule-of-three bound is what the data supports")
            report["runs"].append(row)
    Console(width=220).print(table)
    for row in report["runs"]:
        if "note" in row:
            Console(width=220).print(f"{row['data']} {row['identities']}: {row['note']}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1))


def face_choice_eval(data: list[Path], frames: int, json_out: Path | None) -> None:
    """A bystander in the frame: wrong-face picks of the earlier rule (largest face) and of the kiosk's
    (gates + ONet confidence + centre), on the photo folders (London)."""
    pipelines = {"gates": FacePipeline(), "largest": FacePipeline(face_choice="largest")}
    rule = DecisionRule("mean", frames)
    threshold = rule.threshold(pipelines["gates"].manifest)
    rows = []
    for folder in data:
        dataset = face_eval.load_dataset(folder)
        if dataset.aligned:
            console.print(f"{folder.name}: aligned crops have no scene to choose a face in; skipped")
            continue
        for row in face_eval.face_choice_evaluation(pipelines, dataset, rule, threshold, progress=console.print):
            rows.append({"data": folder.name, **row})
    table = Table(title="face choice with a bystander (next identity, 27% of the width off centre)")
    for col in ("data", "choice", "bystander size", "captures", "no decision", "used the bystander",
                "false rejects", "…from the wrong face", "bystander's card accepted"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["data"], r["face_choice"], f"×{r['bystander_scale']}", str(r["captures"]),
                      str(r["no_decision"]), str(r["captures_with_wrong_face"]), str(r["false_rejects"]),
                      str(r["false_rejects_from_wrong_face"]), str(r["bystander_card_accepted"]))
    Console(width=220).print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"protocol": "face-choice", "machine": face_eval.machine(), "rule": rule.name,
                                        "threshold": threshold, "runs": rows}, indent=1))


@app.command("calibrate")
def calibrate_command(
    far: Annotated[float, typer.Option("--far", help="false-accept rate the threshold must meet")] = TARGET_FAR,
    data: Annotated[list[Path] | None, typer.Option(
        "--data", help="evaluation folders (default: ../shared/data/faces/aligned112 and london)")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="manifest entry to calibrate (default: the embedding role's)")] = None,
    manifest_dir: Annotated[Path | None, typer.Option("--models-dir", help="models folder")] = None,
    frames: Annotated[int, typer.Option("--frames", help="the kiosk rule's frame count (FaceSession: 5)")] = 5,
) -> None:
    """Calibrate the threshold of the kiosk's decision rule (mean of 5 good frames) and write it.

    Scores come from exactly FaceSession's rule (:class:`~firmware.face.session.DecisionRule`: the same
    quality gates decide which frames are good, the same spread choice, the same mean fusion). The
    identities are halved: the threshold comes from the calibration half of each folder where that
    half can measure ``--far`` (else from all its identities, said in the note), the strictest folder
    wins, and the held-out half is reported.
    """
    data = data or [DEFAULT_DATA / "aligned112", DEFAULT_DATA / "london"]
    manifest = Manifest(manifest_dir)
    if model:
        manifest.roles["embedding"] = model
    pipeline = FacePipeline(manifest)
    rule = DecisionRule("mean", frames)
    runs = kiosk_rule_runs(pipeline, data, rule)
    threshold, notes = face_eval.choose_kiosk_threshold(runs, far)
    stored = math.ceil(threshold * 1e6) / 1e6  # round up: never accept a score the calibration rejected
    parts = []
    for n in notes:
        sets = runs[n["data"]]
        cal, held = rates_at(sets["calibration"], stored, far), rates_at(sets["held_out"], stored, far)
        parts.append(f"{n['data']}: {n['source']} {n['threshold']:.3f} (calibration half "
                     f"{n['calibration_threshold']:.3f}{'' if n['calibration_measurable'] else ' unmeasurable'}, "
                     f"{n['calibration_impostors']} impostor comparisons); at the chosen one calibration FAR "
                     f"{cal['false_accepts']}/{cal['impostor_comparisons']} FRR {cal['frr']:.3f}, held-out FAR "
                     f"{held['false_accepts']}/{held['impostor_comparisons']} FRR {held['frr']:.3f}")
    note = f"{dt.date.today().isoformat()} kiosk rule {rule.name} good frames (FaceSession), strictest: " + \
        "; ".join(parts)
    entry = manifest.entry_for("embedding")
    key = rule.threshold_key(far)
    write_thresholds(manifest.path, entry.name, {key: stored, "calibrated": note})
    Console().print(f"{entry.name}: {key} = {stored:.6f} written to {manifest.path}")
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
    Console().print(f"the kiosk now uses {name} (threshold {rule_threshold_key()} = "
                    f"{manifest.threshold('embedding'):.6f})")


# `uketsuke face liveness-eval` lives beside the liveness code (provisioning/face_liveness_cmd.py).
face_liveness_cmd.register(app)
