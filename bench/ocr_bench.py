"""Card-face OCR time per frame, against locating and cropping the card alone (same run, same frames).

    python -m bench.ocr_bench [--frames 30] [--seed 7] [--threads 1]

Frames are rendered first (not timed) by ``hal.sim.card_face``. For each frame we time
(a) the baseline: find the card and warp the three crops (OpenCV only), and (b) the whole per-frame
OCR: (a) + PP-OCRv6-small recognition of the three crops + gate rules 1–5. The ratio (b)/(a) says how
much the recogniser costs on this machine relative to plain image work, which travels better between
machines than milliseconds do. Results are merged into ``bench/results/card-ocr.json`` under
``"bench"`` (the rest of that file is ``uketsuke card ocr-eval``'s report).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from bench.machine import RESULTS_DIR, describe_machine
from firmware.card.ocr.locate import cut_field_crops
from firmware.card.ocr.model import load_recognizer
from firmware.card.ocr.reader import CardFaceReader
from hal.sim.card_face import REFERENCE_TODAY, random_fields, render_card_face


def _stats(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {"median": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "mean": statistics.fmean(ordered), "n": len(ordered)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (0 = all cores)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    frames = [render_card_face(random_fields(rng), rng) for _ in range(args.frames)]
    reader = CardFaceReader(load_recognizer(threads=args.threads), today=REFERENCE_TODAY)
    reader.judge(frames[0].copy())  # warm-up: first onnxruntime run allocates its arenas

    baseline_ms, full_ms = [], []
    for frame in frames:
        start = time.perf_counter()
        crops = cut_field_crops(frame)
        baseline_ms.append((time.perf_counter() - start) * 1000)
        if crops is None:
            print("bench: a rendered frame had no card in it; the locator is broken", file=sys.stderr)
            return 1
        start = time.perf_counter()
        reader.judge(frame)
        full_ms.append((time.perf_counter() - start) * 1000)
        frame.fill(0)

    baseline, full = _stats(baseline_ms), _stats(full_ms)
    ratio = full["median"] / baseline["median"]
    print(f"locate + crops (baseline): median {baseline['median']:.1f} ms, p95 {baseline['p95']:.1f} ms")
    print(f"whole per-frame OCR:       median {full['median']:.1f} ms, p95 {full['p95']:.1f} ms")
    print(f"ratio whole / baseline:    {ratio:.1f}x  ({args.frames} frames, {args.threads or 'all'} thread(s))")

    path = RESULTS_DIR / "card-ocr.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    report["bench"] = {
        "machine": describe_machine(),
        "frames": args.frames,
        "seed": args.seed,
        "onnx_threads": args.threads,
        "baseline": "locate card + warp three crops (OpenCV)",
        "baseline_ms": baseline,
        "ocr_ms_per_frame": full,
        "ratio_to_baseline": ratio,
    }
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
