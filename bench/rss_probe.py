"""Where the kiosk process's memory goes: VmRSS / VmHWM at each stage, as JSON on stdout.

    python -m bench.rss_probe [--ocr 20] [--faces 10] [--frames 8] [--capture-frames 150]

Stages, in the kiosk's order: the kiosk's imports (nfcpy, paho, pygame, OpenCV, numpy, the firmware),
each model load (face pipeline, passive liveness, card-face OCR, as ``FaceEngine.warm_up`` does),
the simulated holder's poses (a simulator cost, reported apart), then ``--ocr`` card-face OCR reads
(:class:`~firmware.steps.face.CardFaceRead` on the sim card camera, a thread each, as at every tap)
and ``--faces`` face tries (``capture_and_decide`` on the sim face camera with the holder reacting,
a thread each, as every try is). Each stage gives ``rss_mb`` (now) and ``hwm_mb`` (peak so far).

Loop times (``loop_s``) are for spotting a slowdown only: no targets, nothing written: the numbers go to docs/notes/flow-bench.md ("Peak RSS").
Not part of ``python -m bench`` (not a ``*_bench.py``). ``MALLOC_ARENA_MAX`` and ``MALLOC_MMAP_THRESHOLD_``
act as they do in the kiosk; ``--no-tune`` leaves malloc as it is (:mod:`firmware.memory`), so
runs with and without it compare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import types
from pathlib import Path


def memory_mb() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MB (Linux /proc; zeros elsewhere)."""
    out = {"rss_mb": 0.0, "hwm_mb": 0.0}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out["rss_mb" if key == "VmRSS" else "hwm_mb"] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


class Probe:
    def __init__(self):
        self.stages: list[dict] = []

    def mark(self, stage: str, **extra) -> None:
        self.stages.append({"stage": stage, **memory_mb(), **extra})
        print(f"rss_probe: {stage}: {self.stages[-1]}", file=sys.stderr, flush=True)


def _in_thread(target, name: str):
    """Run ``target`` on a thread of its own (the kiosk runs every read and try on a new one)."""
    box: dict = {}

    def run():
        try:
            box["value"] = target()
        except BaseException as exc:  # reported by the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ocr", type=int, default=20, help="card-face OCR reads (default 20)")
    parser.add_argument("--faces", type=int, default=10, help="face tries (default 10)")
    parser.add_argument("--frames", type=int, default=8, help="card-camera frames per OCR read at most (default 8)")
    parser.add_argument("--capture-frames", type=int, default=150, help="face frames per try at most (default 150)")
    parser.add_argument("--no-tune", action="store_true",
                        help="leave glibc malloc as it is (no tune_malloc, no trim after the models)")
    args = parser.parse_args(argv)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    probe = Probe()
    from firmware import memory

    # what `uketsuke run` does first (the kiosk's entry point)
    tuned = None if args.no_tune else memory.tune_malloc()
    probe.mark("start")

    import cv2  # noqa: F401  # the kiosk's imports, as `uketsuke run` has them
    import nfc  # noqa: F401
    import numpy as np  # noqa: F401
    import paho.mqtt.client  # noqa: F401
    import pygame  # noqa: F401

    import firmware.app  # noqa: F401
    import ui.screens  # noqa: F401
    from firmware.flow.session import FaceProgress, Proof
    from firmware.steps.face import CardFaceRead, ChipFace, FaceEngine, capture_and_decide
    from hal.camera.sim import SimCamera
    from hal.sim.card.synthetic_face import to_photo_greyscale
    from hal.sim.face_render import card_photo
    from hal.sim.face_scene import Person, face_seed_of
    from ui.demo import demo_catalogue
    from ui.patient import Patient

    probe.mark("after_imports", malloc=tuned)

    engine = FaceEngine(passive_liveness=True)
    engine.pipeline()
    probe.mark("after_face_pipeline")
    engine.passive()
    probe.mark("after_passive_liveness")
    engine.ocr()
    probe.mark("after_ocr_model")
    if not args.no_tune:
        memory.release_free_memory()  # as Kiosk's warm-up does once the models are in
        probe.mark("after_trim")

    with tempfile.TemporaryDirectory(prefix="rss-probe-") as scratch:
        profile = demo_catalogue(Path(scratch), ["card-valid"])["card-valid"]
        seed = face_seed_of(profile.directory)
        probe.mark("after_sim_card_profile")  # generating the virtual card (keys, JPEG 2000): bench only
        from bench.flow_bench import warm_sim_person

        warm_sim_person(profile)
        photo = to_photo_greyscale(card_photo(seed))
        probe.mark("after_sim_poses")

        card_camera = SimCamera()
        card_camera.follow(types.SimpleNamespace(card=types.SimpleNamespace(profile_dir=profile.directory)))
        accepted = 0
        started = time.monotonic()
        for i in range(args.ocr):
            read = CardFaceRead(card_camera, engine, args.frames).start()
            try:
                read.result(60)
                accepted += 1
            except Exception as exc:  # an unsure read is an outcome, not a probe failure
                print(f"rss_probe: OCR read {i}: {type(exc).__name__}", file=sys.stderr)
            read.thread.join()
            read.wipe()
        probe.mark(f"after_{args.ocr}_ocr_reads", accepted=accepted, loop_s=round(time.monotonic() - started, 1))

        matched = 0
        started = time.monotonic()
        for i in range(args.faces):
            camera = SimCamera()
            person = Person.holder(profile.directory)
            camera.present(person)
            progress = FaceProgress()
            chip = ChipFace(photo.copy(), Proof(nonce=b"\0" * 32, challenge_id=None, fresh=False))
            reactor = threading.Thread(target=Patient(person=person)._react,
                                       args=(types.SimpleNamespace(face=progress),), daemon=True)
            reactor.start()
            try:
                outcome = _in_thread(lambda c=camera, ch=chip, p=progress:  # noqa: B023
                                     capture_and_decide(engine, c, ch, p, args.capture_frames), f"face-try-{i}")
            finally:
                progress.stop.set()
                reactor.join(2)
                chip.wipe()
            matched += bool(outcome.match)
        probe.mark(f"after_{args.faces}_face_tries", matched=matched, loop_s=round(time.monotonic() - started, 1))

    print(json.dumps({"probe": "kiosk process memory by stage (VmRSS now, VmHWM peak so far)",
                      "env": {k: os.environ[k] for k in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")
                              if k in os.environ},
                      "args": vars(args), "stages": probe.stages,
                      "peak_mb": probe.stages[-1]["hwm_mb"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
