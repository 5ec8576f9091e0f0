"""Face pipeline benchmark: per-frame time and peak RSS of the kiosk pipeline vs the dlib ResNet peer.

    python -m bench.face_bench [--frames 40] [--decision-frames 5]

Each side runs in its own subprocess (so peak RSS is its own), on the same frames: a public-domain
portrait shipped with scikit-image, jittered into 640×480 camera frames. Per frame:

* kiosk: BlazeFace → ONet 5 landmarks → quality gates → similarity alignment → MobileFaceNet →
  passive liveness (FaceAntiSpoofing), all TFLite through the runtime shim;
* dlib: HOG detector → 5-point shape → ResNet descriptor (face-recognition-models, CC0).

Also timed: one whole face decision as each system would run it: card photo + 15 captured frames
(quality gates / landmarks on each, passive liveness on every 3rd, at most 5) + embeddings of the 5
fused frames + decision; dlib: HOG + landmarks on each frame, descriptors for card and 5 frames. Results, a machine
description and the ratios go to ``bench/results/face.json``; accuracy is taken from the evaluation
reports in ``bench/results/face_eval_*.json`` when present (``uketsuke face eval --json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def frames_for_bench(count: int) -> list[np.ndarray]:
    import skimage.data

    portrait = np.array(skimage.data.astronaut())
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(count):
        m = cv2.getRotationMatrix2D((256, 256), rng.uniform(-4, 4), rng.uniform(0.95, 1.05))
        m[:, 2] += rng.uniform(-10, 10, 2) + (64, -16)
        frames.append(cv2.warpAffine(portrait, m, (640, 480), borderMode=cv2.BORDER_REPLICATE))
    return frames


def passive_liveness(pipeline):
    """The liveness helper's passive model class if it exists, else a direct call of the shipped model."""
    try:
        from firmware.face.liveness import PassiveLiveness  # the liveness part of issue 5

        passive = PassiveLiveness.from_manifest(pipeline.manifest)
        return (lambda rgb, face: passive.score(rgb, face.box)), "firmware.face.liveness.PassiveLiveness.score"
    except ImportError:
        pass
    model, _ = pipeline.manifest.load("liveness")

    def score(rgb, face):
        x0, y0, x1, y1 = face.box
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.2
        s = 256 / side
        m = np.array([[s, 0, -(cx - side / 2) * s], [0, s, -(cy - side / 2) * s]], np.float32)
        crop = cv2.warpAffine(rgb, m, (256, 256), flags=cv2.INTER_LINEAR)
        out = model.run((crop.astype(np.float32) / 255.0)[None])
        return float(np.sum(np.abs(out["Identity"]) * out["Identity_1"]))

    return score, "bench: direct FaceAntiSpoofing call"


def fast_liveness(pipeline):
    """fr_liveness (converted MiniFASNet-like model, manifest entry, not yet the kiosk's liveness role)."""
    from firmware.face.runtime import TfliteModel

    entry = pipeline.manifest.entries["fr_liveness"]
    model = TfliteModel(pipeline.manifest.read_verified(entry), entry.name)

    def score(rgb, face):
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = face.box
        bw, bh = x1 - x0, y1 - y0
        s = min((h - 1) / bh, (w - 1) / bw, 2.7)
        cx, cy, nw, nh = x0 + bw / 2, y0 + bh / 2, bw * s, bh * s
        left, top = max(0, int(cx - nw / 2)), max(0, int(cy - nh / 2))
        crop = cv2.resize(rgb[top:min(h, int(top + nh)), left:min(w, int(left + nw))], (128, 128))
        logits = next(iter(model.run(crop.astype(np.float32)[None]).values()))
        e = np.exp(logits[0] - logits[0].max())
        return float(e[1] / e.sum())

    return score


def time_calls(fn, items, repeat: int = 1) -> list[float]:
    fn(items[0])  # warm-up (first call allocates)
    out = []
    for _ in range(repeat):
        for item in items:
            t0 = time.perf_counter()
            fn(item)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def stats(ms: list[float]) -> dict:
    ordered = sorted(ms)
    return {"median_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms),
            "p90_ms": ordered[int(0.9 * (len(ordered) - 1))], "n": len(ms)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def side_kiosk(count: int, decision_frames: int, capture_frames: int) -> dict:
    from firmware.face.pipeline import FacePipeline
    from firmware.face.session import FaceSession

    frames = frames_for_bench(count)
    t0 = time.perf_counter()
    pipeline = FacePipeline()
    load_ms = (time.perf_counter() - t0) * 1000
    liveness, liveness_source = passive_liveness(pipeline)

    def per_frame(rgb):
        analysis = pipeline.analyse_frame(rgb)
        pipeline.embed_aligned([analysis.aligned])
        liveness(rgb, analysis.face)

    def without_liveness(rgb):
        analysis = pipeline.analyse_frame(rgb)
        pipeline.embed_aligned([analysis.aligned])

    stages = {
        "detect": time_calls(pipeline.detector.detect, frames),
        "detect+landmarks": time_calls(pipeline.find_faces, frames),
        "detect+landmarks+gates+align": time_calls(pipeline.analyse_frame, frames),
    }
    aligned = pipeline.analyse_frame(frames[0]).aligned
    stages["embed"] = time_calls(lambda a: pipeline.embed_aligned([a]), [aligned] * count)
    faces = [pipeline.find_faces(f)[0] for f in frames]
    stages["liveness"] = time_calls(lambda i: liveness(frames[i], faces[i]), list(range(min(10, count))))
    fast = fast_liveness(pipeline)
    stages["liveness_fr_liveness"] = time_calls(lambda i: fast(frames[i], faces[i]), list(range(count)))
    total = time_calls(per_frame, frames)

    def per_frame_fast(rgb):
        analysis = pipeline.analyse_frame(rgb)
        pipeline.embed_aligned([analysis.aligned])
        fast(rgb, analysis.face)

    total_fast = time_calls(per_frame_fast, frames)
    core = time_calls(without_liveness, frames)

    import skimage.data
    card = cv2.resize(cv2.cvtColor(np.array(skimage.data.astronaut())[20:260, 150:330], cv2.COLOR_RGB2GRAY),
                      (120, 160), interpolation=cv2.INTER_AREA)

    def decision(_, liveness=liveness):
        # as the kiosk runs it: gates on every captured frame, passive liveness on every 3rd frame with a
        # face (at most 5, as firmware.face.liveness.LivenessChecker does), embeddings for the 5 chosen
        with FaceSession(pipeline, threshold=0.5, frames_needed=decision_frames) as session:
            session.add_card_photo(card.copy())
            passive_runs = 0
            for i, f in enumerate(frames[:capture_frames]):
                session.add_frame(f.copy())
                if i % 3 == 0 and passive_runs < 5:
                    liveness(f, pipeline.find_faces(f)[0])
                    passive_runs += 1
            session.decide()

    decisions = time_calls(decision, list(range(5)))
    decisions_fast = time_calls(lambda i: decision(i, liveness=fast), list(range(5)))
    return {"name": "kiosk TFLite (BlazeFace+ONet+MobileFaceNet+FaceAntiSpoofing)",
            "runtime": pipeline.embedder.model.runtime, "liveness_source": liveness_source,
            "model_load_ms": load_ms, "per_frame": stats(total), "per_frame_without_liveness": stats(core),
            "per_frame_with_fr_liveness": stats(total_fast),
            "stages": {k: stats(v) for k, v in stages.items()},
            "decision": stats(decisions), "decision_with_fr_liveness": stats(decisions_fast),
            "peak_rss_mb": peak_rss_mb()}


def side_dlib(count: int, decision_frames: int, capture_frames: int) -> dict:
    import dlib
    import face_recognition_models as frm

    frames = frames_for_bench(count)
    t0 = time.perf_counter()
    detector = dlib.get_frontal_face_detector()
    shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    load_ms = (time.perf_counter() - t0) * 1000

    def per_frame(rgb):
        rects = detector(rgb, 0)
        return np.array(net.compute_face_descriptor(rgb, shape(rgb, rects[0])))

    stages = {"detect": time_calls(lambda f: detector(f, 0), frames)}
    total = time_calls(per_frame, frames)

    def decision(_):
        # the same capture done with dlib: detect + landmarks on every frame (for guidance), descriptors
        # for the card and the 5 chosen frames, mean descriptor, euclidean distance (dlib has no liveness)
        shapes = []
        for f in frames[:capture_frames]:
            rects = detector(f, 0)
            shapes.append((f, shape(f, rects[0])))
        chosen = shapes[:: max(1, capture_frames // decision_frames)][:decision_frames]
        embs = [np.array(net.compute_face_descriptor(f, sh)) for f, sh in chosen]
        card_emb = per_frame(frames[0])
        np.linalg.norm(card_emb - np.mean(embs, axis=0))

    return {"name": "dlib HOG + 5-point + ResNet (face-recognition-models 0.3.0, dlib-bin)",
            "dlib_version": dlib.__version__, "model_load_ms": load_ms, "per_frame": stats(total),
            "stages": {k: stats(v) for k, v in stages.items()},
            "decision": stats(time_calls(decision, list(range(3)))),
            "peak_rss_mb": peak_rss_mb()}


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import ai_edge_litert
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "opencv": cv2.__version__, "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
            "tflite_threads": os.environ.get("UKETSUKE_TFLITE_THREADS", "2"),
            "load_average_1_5_15": list(os.getloadavg()),
            "note": "shared CI-like machine: other jobs may run at the same time; compare ratios"}


def accuracy_reports() -> list[dict]:
    out = []
    for path in sorted(RESULTS.glob("face_eval_*.json")):
        report = json.loads(path.read_text())
        for run in report["runs"]:
            out.append({"file": path.name, "protocol": report["protocol"], "data": Path(run["data"]).name,
                        "model": run["model"], "probe": run["probe"], "tar": run["tar"], "eer": run["eer"]})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="face pipeline benchmark vs dlib")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--decision-frames", type=int, default=5, help="frames fused per decision")
    parser.add_argument("--capture-frames", type=int, default=15, help="frames captured per decision")
    parser.add_argument("--side", choices=["kiosk", "dlib"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "face.json")
    args = parser.parse_args(argv)
    if args.side:
        side = side_kiosk if args.side == "kiosk" else side_dlib
        print(json.dumps(side(args.frames, args.decision_frames, args.capture_frames)))
        return 0
    results = {}
    for name in ("kiosk", "dlib"):
        proc = subprocess.run([sys.executable, "-m", "bench.face_bench", "--side", name, "--frames",
                               str(args.frames), "--decision-frames", str(args.decision_frames),
                               "--capture-frames", str(args.capture_frames)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name} side failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    k, d = results["kiosk"], results["dlib"]
    key = "decision"
    ratios = {
        "per_frame_speedup_vs_dlib": d["per_frame"]["median_ms"] / k["per_frame"]["median_ms"],
        "per_frame_speedup_vs_dlib_with_fr_liveness":
            d["per_frame"]["median_ms"] / k["per_frame_with_fr_liveness"]["median_ms"],
        "per_frame_speedup_vs_dlib_without_liveness":
            d["per_frame"]["median_ms"] / k["per_frame_without_liveness"]["median_ms"],
        "decision_speedup_vs_dlib": d[key]["median_ms"] / k[key]["median_ms"],
        "decision_speedup_vs_dlib_with_fr_liveness": d[key]["median_ms"] / k["decision_with_fr_liveness"]["median_ms"],
        "peak_rss_ratio_kiosk_over_dlib": k["peak_rss_mb"] / d["peak_rss_mb"],
    }
    report = {"machine": machine(), "frames": args.frames, "decision_frames": args.decision_frames,
              "capture_frames": args.capture_frames,
              "kiosk": k, "dlib": d, "ratios": ratios, "accuracy": accuracy_reports(),
              "target": ">= 3x faster per frame than dlib (detect+align+embed+liveness) at better accuracy"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"per frame: kiosk {k['per_frame']['median_ms']:.1f} ms with FaceAntiSpoofing, "
          f"{k['per_frame_with_fr_liveness']['median_ms']:.1f} ms with fr_liveness, "
          f"{k['per_frame_without_liveness']['median_ms']:.1f} ms without liveness; "
          f"dlib {d['per_frame']['median_ms']:.1f} ms")
    print(f"whole decision (card + {args.capture_frames} captured frames, {args.decision_frames} fused): kiosk {k[key]['median_ms']:.0f} ms, "
          f"({k['decision_with_fr_liveness']['median_ms']:.0f} ms with fr_liveness), dlib {d[key]['median_ms']:.0f} ms")
    print(f"peak RSS: kiosk {k['peak_rss_mb']:.0f} MB, dlib {d['peak_rss_mb']:.0f} MB")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
