"""Check-in benchmark: tap → the terminal's ack at the kiosk, face and PIN paths, against the overlap floor.

    python -m bench.flow_bench [--runs 50] [--alone-runs 20] [--rates 115200 921600]

What runs (one kiosk per rate, everything real except the devices):

* the card: nfcpy's PN532 driver (``devices.nfc = nfcpy:tty:/dev/pts/N:pn532``) talking to the PN532
  emulator on a pty, in its own process, with true wire time (UART 10 bits/byte at the rate, RF of
  :mod:`hal.sim.link_timing`); a tap = a fresh ``card-valid`` card put in the emulated field;
* the cameras: ``sim``; the face camera paced at 30 fps real time (``SimCamera.realtime``) with the
  card's holder in front of it, the card camera following the hand (the card face, like the e2e tests);
* the link: a mosquitto started here (a separate process, MQTT 5, as in production) and the
  :class:`~terminal.app.ReferenceTerminal` in this process, verifying every proof;
* the patient: :class:`ui.patient.Patient`, answering every screen at once (no human delays) and
  doing the face challenge the screen shows;
* the screen: :class:`ui.screens.ScreenRenderer` drawing whatever the flow shows at 30 fps on a
  thread (SDL dummy driver), 800×480 on even runs and 1280×800 on odd ones.

Measured per run: the emulator's clock at the tap (CLOCK_MONOTONIC, shared between processes) →
the kiosk's ``link.on_answer`` for that visit's result. The card is then taken away and the kiosk
goes back to idle before the next tap (not timed).

Baselines in the same run, per rate ("alone": no kiosk, no screen, the same emulator and models):

* **chip floor** of each path: the wire time of exactly the ISO-DEP I-blocks that carried the
  path's APDUs in that run (presence checks, REQB and ATTRIB left out), at the minimal PN532
  framing: :func:`link_floor` (the model card_bench uses);
* **face decision alone**: ``capture_and_decide`` on the paced camera with the holder reacting to the
  challenge (capture at 30 fps until ready + decide), the kiosk's own step;
* **chip part alone**: the path's card steps through the firmware's card layer on a bare nfcpy
  reader (face path: token kind, certificate, 照合番号B, photo, genuineness; PIN path: token kind,
  certificate, tries left, VERIFY PIN, signature);
* **overlap floor** = max(chip floor, face decision alone) (PIN path: the chip floor);
  **sequential** = chip part alone + face decision alone, run one after the other.

Ratios are taken quantile by quantile: ``ratio_to_floor.p95`` = measured p95 / floor p95.
Targets (issue #10): face path ≤ 1.2× the overlap floor and ≤ 2.5 s at 115200 (judged at p50 and
at p95), UI frame p95 ≤ 33 ms on the face screen with a preview, peak RSS ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

from bench.machine import write_results

TARGET_FACE_RATIO_TO_FLOOR = 1.2
TARGET_FACE_S_AT_115200 = 2.5
TARGET_UI_FRAME_P95_MS = 33.0
TARGET_PEAK_RSS_MB = 300.0
UI_SIZES = ((800, 480), (1280, 800))
UI_FPS = 30.0
PROFILE = "card-valid"

# ---------------------------------------------------------------------------------------------------
# floor arithmetic (no heavy imports: tests/unit/bench checks it)


def block_kind(pcb: int) -> str:
    """ISO 14443-4 block type from its PCB: ``i`` (I-block), ``r_ack``, ``r_nak``, ``s``; the Type B
    activation frames (REQB/WUPB 05, ATTRIB 1D) are ``activation``."""
    if pcb in (0x05, 0x1D):
        return "activation"
    if pcb & 0xE2 == 0x02:
        return "i"
    if pcb & 0xE6 == 0xA2:
        return "r_nak" if pcb & 0x10 else "r_ack"
    if pcb & 0xC7 == 0xC2:
        return "s"
    return "other"


def apdu_blocks(blocks) -> list[tuple[int, int | None]]:
    """The (command, answer) lengths of the blocks that moved APDUs: I-blocks, and the R(ACK)s of a
    chained answer. Presence checks (nfcpy sends R(NAK)), S-blocks and activation are left out.

    ``blocks``: (pcb, command length, answer length or None) as the card saw them.
    """
    return [(cmd, rsp) for pcb, cmd, rsp, *_ in blocks if block_kind(pcb) in ("i", "r_ack")]


def link_floor(exchanges, baud: int) -> dict[str, float]:
    """Wire time of ``exchanges`` ((command, answer) block lengths) at ``baud``: one minimal
    InCommunicateThru + ACK + answer per block on the UART, plus the RF time
    (:meth:`hal.sim.link_timing.WireLog.floor_seconds`, the card benchmark's model)."""
    from hal.sim.link_timing import WireLog

    return WireLog(rf_exchanges=list(exchanges)).floor_seconds(baud)


def quantile(values, q: float) -> float:
    """Linear-interpolated quantile (numpy's default), ``q`` in [0, 1]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values) -> dict:
    values = list(values)
    return {"p50": quantile(values, 0.5), "p95": quantile(values, 0.95), "mean": statistics.fmean(values),
            "min": min(values), "max": max(values), "n": len(values)}


def overlap_floor(chip_floor_s: float, face_decision_s: float | None) -> float:
    """What a perfectly overlapped check-in costs: the slower of the card link and the face decision."""
    return max(chip_floor_s, face_decision_s or 0.0)


def sequential_sum(chip_s: float, face_decision_s: float | None) -> float:
    """The chip part and the face part one after the other."""
    return chip_s + (face_decision_s or 0.0)


def compare(measured: dict, floor: dict, sequential: dict) -> dict:
    """Quantile-by-quantile ratios of the measured times to the floor and to the sequential sum."""
    return {"ratio_to_floor": {q: measured[q] / floor[q] for q in ("p50", "p95")},
            "ratio_to_sequential": {q: measured[q] / sequential[q] for q in ("p50", "p95")}}


def floors(chip_floor_s: list[float], face_alone_s: list[float] | None, chip_alone_s: list[float]) -> dict:
    """Overlap floor and sequential sum at p50 and p95 from the per-run chip floors, the face
    decisions measured alone and the chip parts measured alone (each taken at the same quantile)."""
    out: dict = {"overlap_floor_s": {}, "sequential_s": {}}
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        face = quantile(face_alone_s, q) if face_alone_s else None
        out["overlap_floor_s"][name] = overlap_floor(quantile(chip_floor_s, q), face)
        out["sequential_s"][name] = sequential_sum(quantile(chip_alone_s, q), face)
    return out


# ---------------------------------------------------------------------------------------------------
# the PN532 emulator in its own process (a PN532 is a separate chip: it must not share our GIL)


def emulator_process(max_baud: int, profiles: list[str], control) -> None:
    """Child: a PN532 emulator whose field holds a fresh card per ``present``; logs what the card saw."""
    from hal.sim.card import VirtualCard
    from hal.sim.iso14443b import TypeBCard
    from hal.sim.pn532_emulator import Pn532Emulator

    log: list[tuple[int, int, int | None, float]] = []

    class LoggedCard(TypeBCard):
        def receive(self, frame: bytes) -> bytes | None:
            started = time.monotonic()
            answer = super().receive(frame)
            if frame:
                log.append((frame[0], len(frame), None if answer is None else len(answer), started,
                            time.monotonic() - started))
            return answer

    signers: dict[str, tuple] = {}  # profile → its applications' signers, keys loaded

    def warmed(card: VirtualCard) -> VirtualCard:
        # The virtual card parses (and checks) its PEM keys at its first signature: ~60 ms that no real
        # card spends, inside an answer nfcpy waits FWT + 0.1 s for (the emulated card sends no WTX);
        # under load that tipped signatures past the timeout. Its keys are loaded once per profile,
        # before the emulator serves (a long GIL hold here would delay the PN532's ACKs past nfcpy's
        # 100 ms), and every fresh card of that profile gets the loaded signers.
        key = str(card.profile_dir)
        if key not in signers:
            for app in card._applications.values():
                for sign in [signer for _, signer in app.keys.values()] + [app.internal_key]:
                    if sign is not None:
                        sign(b"\x00" * 51)
            signers[key] = {aid: (app.keys, app.internal_key) for aid, app in card._applications.items()}
        for aid, app in card._applications.items():
            app.keys, app.internal_key = signers[key][aid]
        return card

    for profile_dir in profiles:
        warmed(VirtualCard(profile_dir))
    emulator = Pn532Emulator(None, max_baud=max_baud).start()
    control.send(emulator.path)
    ready = None
    try:
        while True:
            command, *args = control.recv()
            if command == "prepare":  # the next card, made before the timed tap
                ready = LoggedCard(warmed(VirtualCard(args[0])))
                control.send("ok")
            elif command == "present":
                log.clear()
                emulator.wire.reset()
                emulator.card = ready
                control.send(time.monotonic())
            elif command == "reset":  # a fresh log, the card staying in the field
                log.clear()
                emulator.wire.reset()
                control.send("ok")
            elif command == "remove":
                if emulator.card is not None:
                    emulator.card.remove()
                control.send(time.monotonic())
            elif command == "blocks":
                control.send({"baud": emulator.baud, "blocks": list(log)})
            else:
                break
    finally:
        emulator.close()


class Emulator:
    """The parent's handle on :func:`emulator_process`."""

    def __init__(self, max_baud: int, profiles=()):
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=emulator_process, args=(max_baud, [str(p) for p in profiles], child),
                                        daemon=True)
        self._process.start()
        self.path = self._pipe.recv()
        self._lock = threading.Lock()

    def ask(self, *command):
        with self._lock:
            self._pipe.send(command)
            return self._pipe.recv()

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._pipe.send(("stop",))
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()


@dataclass
class _Placed:
    profile_dir: Path


class Pn532Hand:
    """The patient's hand at the emulated PN532; ``card`` (its ``profile_dir``) is what the simulated
    card camera looks at, as with the e2e tests' vpcd hand."""

    def __init__(self, emulator: Emulator):
        self.emulator = emulator
        self.card: _Placed | None = None
        self.tapped_at = self.removed_at = 0.0

    def present(self, profile_dir) -> float:
        self.emulator.ask("prepare", str(profile_dir))
        self.card = _Placed(Path(profile_dir))
        self.tapped_at = self.emulator.ask("present")
        return self.tapped_at

    def remove(self) -> None:
        self.removed_at = self.emulator.ask("remove")
        self.card = None


# ---------------------------------------------------------------------------------------------------
# the broker


class Mosquitto:
    """A private mosquitto on a free loopback port (stopped by its PID)."""

    def __init__(self, workdir: Path):
        from firmware.link.broker import free_port

        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise SystemExit("mosquitto is not installed (make setup installs it)")
        self.port = free_port()
        config = workdir / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                          "log_dest none\n")
        self.process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


# ---------------------------------------------------------------------------------------------------
# instrumentation (bench only: nothing in firmware/ knows)


def timed_face_progress(marks: list):
    """A FaceProgress that notes when each face step first shows, and every preview frame."""
    from firmware.flow.session import FaceProgress

    class TimedFaceProgress(FaceProgress):
        def publish(self, snapshot) -> None:
            marks.append((snapshot.step, snapshot.preview is not None, time.monotonic()))
            super().publish(snapshot)

    return TimedFaceProgress


def mark_card_steps(marks: list):
    """Note in ``marks`` when the card-face OCR answers and when 照合番号B and the photo read start.

    Returns the function that undoes the patch.
    """
    from firmware.card.mynumber import MyNumberCard
    from firmware.steps.face import CardFaceRead

    originals = {(CardFaceRead, "_run"): CardFaceRead._run,
                 (MyNumberCard, "verify_collation_b"): MyNumberCard.verify_collation_b,
                 (MyNumberCard, "read_photo"): MyNumberCard.read_photo,
                 (MyNumberCard, "prove_genuine"): MyNumberCard.prove_genuine}

    def ocr_run(self):
        try:
            return originals[(CardFaceRead, "_run")](self)
        finally:
            marks.append(("ocr_done", False, time.monotonic()))

    def wrap(cls, name, mark):
        def call(*args, **kwargs):
            marks.append((mark, False, time.monotonic()))
            return originals[(cls, name)](*args, **kwargs)
        return call

    CardFaceRead._run = ocr_run
    MyNumberCard.verify_collation_b = wrap(MyNumberCard, "verify_collation_b", "collation_sent")
    MyNumberCard.read_photo = wrap(MyNumberCard, "read_photo", "photo_read")
    MyNumberCard.prove_genuine = wrap(MyNumberCard, "prove_genuine", "genuineness")

    def restore():
        for (cls, name), original in originals.items():
            setattr(cls, name, original)

    return restore


def face_steps(marks) -> dict:
    """First time of each face step, the frames captured and their rate, from ``timed_face_progress`` marks."""
    first: dict[str, float] = {}
    frames = [t for step, preview, t in marks if step == "capture" and preview]
    for step, _, t in marks:
        first.setdefault(step, t)
    out = {"first": first, "frames": len(frames)}
    if len(frames) > 1:
        out["fps"] = (len(frames) - 1) / (frames[-1] - frames[0])
    return out


class UiLoop(threading.Thread):
    """The screen as the window draws it: ``view_of`` + ``ScreenRenderer.render`` at 30 fps."""

    def __init__(self, kiosk):
        super().__init__(name="bench-ui", daemon=True)
        import pygame

        from ui.screens import ScreenRenderer

        self.kiosk = kiosk
        self.renderers = {size: (ScreenRenderer(size), pygame.Surface(size)) for size in UI_SIZES}
        self.size = UI_SIZES[0]
        self.frames: list[tuple[tuple[int, int], str, bool, float]] = []  # size, state, preview, ms
        self.recording = False
        self._halt = threading.Event()

    def run(self) -> None:
        from ui.window import view_of

        period = 1 / UI_FPS
        due = time.monotonic()
        while not self._halt.is_set():
            size = self.size
            renderer, surface = self.renderers[size]
            started = time.perf_counter()
            view = view_of(self.kiosk)
            renderer.render(surface, view)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if self.recording:
                self.frames.append((size, view.state, view.preview is not None, elapsed_ms))
            due += period
            delay = due - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)
            else:
                due = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


class VisitFailed(RuntimeError):
    """A visit that did not end in an acknowledged result of the path's method (counted, reported)."""


def _wait(predicate, timeout_s: float) -> bool:
    """Polled finer than the demo's default: the bench times what it waits for."""
    from ui.demo import wait_until

    return wait_until(predicate, timeout_s, step_s=0.005)


# ---------------------------------------------------------------------------------------------------
# the paths alone: chip part, face decision


def chip_part(link, path: str, profile, issuer_keys, policy) -> tuple[float, object]:
    """The path's card steps through the firmware's card layer, timed; returns (seconds, photo or None)."""
    import datetime as dt

    from firmware.card.collation import CollationB
    from firmware.card.mynumber import MyNumberCard
    from firmware.secrets import SecretBuffer
    from firmware.steps import card as card_steps
    from hal.clock import JST

    card = MyNumberCard(link, collation_policy=policy)
    started = time.monotonic()
    card_steps.read_tap(card, dt.datetime.now(dt.UTC), "months", None, card_steps.Challenge.own)
    photo = None
    if path == "face":
        today = dt.datetime.now(JST).date()
        card.verify_collation_b(CollationB.from_digits(profile.collation_b, confident=True), today)
        photo = card.read_photo()
        card.prove_genuine(card_steps.Challenge.own().nonce, issuer_keys, today)
    else:
        card_steps.pin_tries(card)
        pin = SecretBuffer(len(profile.pin))
        for digit in profile.pin:
            pin.append_digit(int(digit))
        card_steps.check_pin(card, pin, card_steps.Challenge.own)
    return time.monotonic() - started, photo


def face_decision(engine, profile, photo, capture_frames: int) -> dict:
    """``capture_and_decide`` alone: the holder at the paced camera, reacting to the challenge."""
    from firmware.flow.session import Proof
    from firmware.steps.face import ChipFace, ChipRead, capture_and_decide
    from hal.camera.sim import SimCamera
    from hal.sim.face_scene import Person
    from ui.patient import Patient

    camera = SimCamera(realtime=True)
    person = Person.holder(profile.directory)
    camera.present(person)
    marks: list = []
    progress = timed_face_progress(marks)()
    chip = ChipRead.finished(ChipFace(photo.copy(), Proof(nonce=b"\0" * 32, challenge_id=None, fresh=False)))

    class _Session:
        face = progress

    reactor = threading.Thread(target=Patient(person=person)._react, args=(_Session,), daemon=True)
    reactor.start()
    started = time.monotonic()
    outcome = capture_and_decide(engine, camera, chip, progress, capture_frames)
    elapsed = time.monotonic() - started
    progress.stop.set()
    reactor.join(2)
    steps = face_steps(marks)
    deciding = steps["first"].get("deciding")
    return {"s": elapsed, "match": outcome.match, "reason": outcome.reason, "frames": steps["frames"],
            "fps": steps.get("fps"), "decide_s": (started + elapsed - deciding) if deciding else None}


def ocr_alone(engine, profile, frames: int) -> float:
    """The card-face OCR gate alone on the card camera's frames (reported, not in the floor)."""
    from firmware.steps.face import CardFaceRead
    from hal.camera.sim import SimCamera

    camera = SimCamera()
    camera.follow(types.SimpleNamespace(card=_Placed(profile.directory)))
    started = time.monotonic()
    read = CardFaceRead(camera, engine, frames).start()
    read.result(30)
    return time.monotonic() - started


def bench_alone(rate: int, profile, issuer_keys, engine, config, runs: int, scratch: Path) -> dict:
    from firmware.card.collation import CollationPolicy
    from firmware.card.collation_ledger import CollationLedger
    from hal.nfc.nfcpy import open_reader

    emulator = Emulator(rate, [profile.directory])
    policy = CollationPolicy(CollationLedger(scratch / f"alone-{rate}"))
    reader = open_reader(f"tty:{emulator.path}:pn532")
    reader.start()
    out: dict = {"face": {"chip_s": [], "face_s": [], "decide_s": [], "frames": [], "fps": [], "sequential_s": [],
                          "chip_floor_s": []},
                 "pin": {"chip_s": [], "sequential_s": [], "chip_floor_s": []}, "ocr_s": []}
    hand = Pn532Hand(emulator)
    try:
        for run in range(runs):
            for path in ("face", "pin"):
                hand.present(profile.directory)
                link = reader.wait_for_card(5)
                if link is None:
                    raise SystemExit("the emulated PN532 found no card")
                emulator.ask("reset")  # the path's own exchanges only, not the activation
                chip_s, photo = chip_part(link, path, profile, issuer_keys, policy)
                blocks = emulator.ask("blocks")
                out[path]["chip_floor_s"].append(link_floor(apdu_blocks(blocks["blocks"]), blocks["baud"])["total_s"])
                out[path]["chip_s"].append(chip_s)
                hand.remove()
                link.close()
                if path == "face":
                    face = face_decision(engine, profile, photo, config.face.capture_frames)
                    photo.fill(0)
                    if not face["match"]:
                        raise SystemExit(f"the holder did not match alone ({face['reason']})")
                    for key in ("decide_s", "frames", "fps"):
                        out["face"][key].append(face[key])
                    out["face"]["face_s"].append(face["s"])
                    out["face"]["sequential_s"].append(chip_s + face["s"])
                else:
                    out["pin"]["sequential_s"].append(chip_s)
            if run < max(3, runs // 4):
                out["ocr_s"].append(ocr_alone(engine, profile, config.face.card_face_frames))
            print(f"  alone {rate}: {run + 1}/{runs} face chip {out['face']['chip_s'][-1]:.3f} s, "
                  f"face {out['face']['face_s'][-1]:.3f} s; pin chip {out['pin']['chip_s'][-1]:.3f} s", flush=True)
    finally:
        reader.close()
        emulator.close()
    return out


# ---------------------------------------------------------------------------------------------------
# the whole check-in


def make_kiosk(emulator: Emulator, broker_port: int, issuer_dir: Path, scratch: Path, rate: int):
    from firmware.app import Kiosk
    from firmware.config import Broker, CardPolicy, Clock, Config, Devices

    config = Config(data_dir=scratch / f"var-{rate}",
                    broker=Broker(port=broker_port, keepalive_s=5, insecure_local=True),
                    devices=Devices(nfc=f"nfcpy:tty:{emulator.path}:pn532"),
                    card=CardPolicy(issuer_keys_dir=issuer_dir), clock=Clock(source="window"))
    kiosk = Kiosk(config)
    kiosk.face_camera.realtime = True
    return kiosk


def one_visit(kiosk, hand: Pn532Hand, terminal, profile, path: str, acks: dict, face_marks: list) -> dict:
    from hal.sim.face_scene import Person
    from ui.patient import Patient
    from ui.scenarios import registry_entry

    if not _wait(lambda: kiosk.flow.state_id == "idle", 30):
        raise SystemExit(f"the kiosk is {kiosk.flow.state_id!r}, not idle ({kiosk.problems})")
    person = Person.holder(profile.directory) if path == "face" else None
    if person is None:
        kiosk.face_camera.leave()
    else:
        kiosk.face_camera.present(person)
    terminal.registry.put(registry_entry(profile.directory, {}))
    states: list[tuple[str, float]] = []

    def on_state(state, session):
        states.append((state, time.monotonic()))

    kiosk.add_listener(on_state)
    patient = Patient(method=path, pin=profile.pin, person=person, hand=hand).attach(kiosk)
    before = set(kiosk.services.result_ids)
    face_marks.clear()
    try:
        tapped = hand.present(profile.directory)

        def result_id():
            new = [rid for rid in kiosk.services.result_ids if rid not in before]
            return new[-1] if new else None

        if not _wait(lambda: result_id() is not None and result_id() in acks, 60):
            raise VisitFailed(f"{path}: no acknowledged result (state {kiosk.flow.state_id!r}, screens "
                             f"{patient.states}, problems {kiosk.problems})")
        rid = result_id()
        acked = acks[rid]
        final_state = kiosk.flow.state_id
        method = kiosk.flow.session.method
        blocks = hand.emulator.ask("blocks")
    finally:
        patient.detach()
        kiosk.listeners.remove(patient._on_state)
        hand.remove()
        _wait(lambda: kiosk.flow.state_id == "idle", 30)
        kiosk.listeners.remove(on_state)
    if method != path:
        raise VisitFailed(f"{path}: the result says {method!r} (screens {patient.states})")
    first: dict[str, float] = {}
    for state, t in states:
        first.setdefault(state, t)
    apdus = [b for b in blocks["blocks"] if block_kind(b[0]) in ("i", "r_ack")]
    presence = [b for b in blocks["blocks"] if block_kind(b[0]) == "r_nak"]
    floor = link_floor(apdu_blocks(blocks["blocks"]), blocks["baud"])
    face = face_steps(face_marks) if path == "face" else None
    phases = {"tap_to_reading": first.get("reading", acked) - tapped,
              "reading_to_choose_method": first.get("choose_method", acked) - first.get("reading", tapped),
              "checking_to_done": first.get("done", acked) - first.get("checking", acked),
              "done_to_ack": acked - first.get("done", acked),
              "first_apdu": apdus[0][3] - tapped if apdus else None,
              "last_apdu": apdus[-1][3] - tapped if apdus else None}
    if face is not None:
        f = face["first"]
        deciding = f.get("deciding", acked)
        capture_over = f.get("chip", deciding)  # "chip" shows only if the capture was ready first
        phases |= {"method_to_face": first.get("face", acked) - first.get("choose_method", acked),
                   "face_to_capture": f.get("capture", acked) - first.get("face", acked),
                   "face_capture": capture_over - f.get("capture", acked),
                   "face_chip_wait": deciding - capture_over,
                   "face_decide": first.get("checking", acked) - deciding}
        for mark in ("genuineness", "ocr_done", "collation_sent", "photo_read"):  # since the tap
            if mark in f:
                phases[f"tap_to_{mark}"] = f[mark] - tapped
    else:
        phases |= {"method_to_pin_checking": first.get("pin_checking", acked) - first.get("choose_method", acked),
                   "pin_checking": first.get("checking", acked) - first.get("pin_checking", acked)}
    return {"s": acked - tapped, "final_state": final_state, "chip_floor_s": floor["total_s"],
            "chip_floor_uart_s": floor["uart_s"], "chip_floor_rf_s": floor["rf_s"], "apdu_blocks": len(apdus),
            "presence_checks": len(presence), "phases": phases,
            "face_frames": face["frames"] if face else None, "face_fps": face.get("fps") if face else None,
            "screens": patient.states}


def bench_flow(rate: int, profile, issuer_dir: Path, terminal, broker_port: int, runs: int, scratch: Path,
               ui_frames: list, verbose: bool = False) -> dict:
    import firmware.visit

    emulator = Emulator(rate, [profile.directory])
    kiosk = make_kiosk(emulator, broker_port, issuer_dir, scratch, rate)
    hand = Pn532Hand(emulator)
    kiosk.card_camera.follow(hand)
    acks: dict[str, float] = {}
    answered = kiosk.link.on_answer

    def on_answer(result_id, ack):
        acks.setdefault(result_id, time.monotonic())
        answered(result_id, ack)

    kiosk.link.on_answer = on_answer
    face_marks: list = []
    original_progress = firmware.visit.FaceProgress
    firmware.visit.FaceProgress = timed_face_progress(face_marks)
    restore_card_marks = mark_card_steps(face_marks)
    kiosk.start()
    ui = UiLoop(kiosk)
    ui.start()
    out: dict = {"face": [], "pin": [], "failures": []}
    try:
        if not _wait(lambda: kiosk.flow.state_id == "idle" and kiosk.link.connected and
                     kiosk.link.challenges_ready > 0, 30):
            raise SystemExit(f"the kiosk did not come up: {kiosk.flow.state_id!r}, {kiosk.problems}")
        kiosk.services.engine.warm_up()
        for path in ("face", "pin"):  # warm-up visits (first-use allocations), not counted
            with contextlib.suppress(VisitFailed):
                one_visit(kiosk, hand, terminal, profile, path, acks, face_marks)
        for run in range(runs):
            for path in ("face", "pin"):
                ui.size = UI_SIZES[run % 2]
                for _attempt in range(3):  # a failed visit is reported, and the run is tried again
                    ui.recording = True
                    try:
                        visit = one_visit(kiosk, hand, terminal, profile, path, acks, face_marks)
                        break
                    except VisitFailed as exc:
                        print(f"  FAILED visit: {exc}", flush=True)
                        out["failures"].append({"path": path, "run": run, "error": str(exc)})
                    finally:
                        ui.recording = False
                else:
                    raise SystemExit(f"{path}: three failed visits in a row; giving up")
                visit["ui_size"] = "x".join(map(str, ui.size))
                out[path].append(visit)
                if verbose:
                    print(f"    {path} {visit['s']:.3f} s: " + ", ".join(
                        f"{k} {v:.3f}" for k, v in visit["phases"].items() if v is not None)
                        + f"; fps {visit['face_fps'] or 0:.1f}, frames {visit['face_frames']}", flush=True)
            print(f"  flow {rate}: {run + 1}/{runs} face {out['face'][-1]['s']:.3f} s, "
                  f"pin {out['pin'][-1]['s']:.3f} s", flush=True)
    finally:
        ui.stop()
        ui_frames.extend(ui.frames)
        kiosk.stop()
        firmware.visit.FaceProgress = original_progress
        restore_card_marks()
        emulator.close()
    return out


# ---------------------------------------------------------------------------------------------------
# report


def report_path(path: str, visits: list[dict], alone: dict) -> dict:
    measured = summary(v["s"] for v in visits)
    chip_floor = [v["chip_floor_s"] for v in visits]
    face_alone = alone["face"]["face_s"] if path == "face" else None
    chip_alone = alone[path]["chip_s"]
    base = floors(chip_floor, face_alone, chip_alone)
    phases = {name: summary(v["phases"][name] for v in visits if v["phases"][name] is not None)
              for name in visits[0]["phases"]}
    out = {
        "measured_s": measured,
        "chip_link_floor_s": summary(chip_floor),
        "chip_link_floor_uart_s": summary(v["chip_floor_uart_s"] for v in visits),
        "chip_link_floor_rf_s": summary(v["chip_floor_rf_s"] for v in visits),
        "apdu_blocks": summary(v["apdu_blocks"] for v in visits),
        "presence_checks_during_visit": summary(v["presence_checks"] for v in visits),
        "chip_part_alone_s": summary(chip_alone),
        "chip_part_alone_floor_s": summary(alone[path]["chip_floor_s"]),
        **base,
        **compare(measured, base["overlap_floor_s"], base["sequential_s"]),
        "phases_s": phases,
        "runs": [{k: v for k, v in visit.items() if k != "screens"} for visit in visits],
        "screens": visits[0]["screens"],
    }
    if path == "face":
        out["face_decision_alone_s"] = summary(face_alone)
        out["face_decide_step_alone_s"] = summary(alone["face"]["decide_s"])
        out["face_frames_alone"] = summary(alone["face"]["frames"])
        out["face_fps_alone"] = summary(f for f in alone["face"]["fps"] if f)
        out["face_fps_in_flow"] = summary(v["face_fps"] for v in visits if v["face_fps"])
        out["card_face_ocr_alone_s"] = summary(alone["ocr_s"])
    return out


def report_ui(frames) -> dict:
    out: dict = {}
    for size in UI_SIZES:
        name = "x".join(map(str, size))
        face = [ms for s, state, preview, ms in frames if s == size and state == "face" and preview]
        every = [ms for s, state, preview, ms in frames if s == size]
        out[name] = {"face_with_preview_ms": summary(face) if face else None, "all_screens_ms": summary(every)}
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def warm_sim_person(profile) -> None:
    """Render every pose of the holder's challenges once (the simulated camera caches them by pose):
    drawing a synthetic face is the simulator's cost, not the kiosk's, and it cost the first visits of
    each challenge kind 10-13 fps instead of 30."""
    from hal.sim.face_scene import _KINDS, _action_script, _pose, face_seed_of

    seed = face_seed_of(profile.directory)
    _pose(seed, 0.0, 0.0)
    for kind in _KINDS:
        for yaw, closure in _action_script(kind):
            _pose(seed, yaw, closure)


def judge(rates: dict, ui: dict, rss_mb: float) -> list[dict]:
    targets = []
    for rate, result in rates.items():
        face = result["face"]
        for q in ("p50", "p95"):
            targets.append({"target": f"face path ≤ {TARGET_FACE_RATIO_TO_FLOOR}× overlap floor at {rate} ({q})",
                            "value": face["ratio_to_floor"][q],
                            "pass": face["ratio_to_floor"][q] <= TARGET_FACE_RATIO_TO_FLOOR})
        if rate == "115200":
            for q in ("p50", "p95"):
                targets.append({"target": f"face path ≤ {TARGET_FACE_S_AT_115200} s at 115200 ({q})",
                                "value": face["measured_s"][q], "pass": face["measured_s"][q] <= TARGET_FACE_S_AT_115200})
    for size, result in ui.items():
        p95 = result["face_with_preview_ms"]["p95"] if result["face_with_preview_ms"] else None
        targets.append({"target": f"UI frame p95 ≤ {TARGET_UI_FRAME_P95_MS:g} ms (face screen with preview, {size})",
                        "value": p95, "pass": p95 is not None and p95 <= TARGET_UI_FRAME_P95_MS})
    targets.append({"target": f"peak RSS ≤ {TARGET_PEAK_RSS_MB:g} MB", "value": rss_mb,
                    "pass": rss_mb <= TARGET_PEAK_RSS_MB})
    return targets


def print_table(rates: dict, ui: dict, rss_mb: float, targets: list[dict]) -> None:
    print(f"{'path':>5} {'baud':>7} | {'p50 s':>6} {'p95 s':>6} | {'chip floor':>10} {'face alone':>10} "
          f"{'floor p50':>9} {'seq p50':>7} | {'/floor p50':>10} {'p95':>5} | {'/seq p50':>8} {'p95':>5}")
    for rate, result in rates.items():
        for path in ("face", "pin"):
            r = result[path]
            face = r.get("face_decision_alone_s", {}).get("p50")
            print(f"{path:>5} {rate:>7} | {r['measured_s']['p50']:6.3f} {r['measured_s']['p95']:6.3f} | "
                  f"{r['chip_link_floor_s']['p50']:10.3f} {face if face is not None else float('nan'):10.3f} "
                  f"{r['overlap_floor_s']['p50']:9.3f} {r['sequential_s']['p50']:7.3f} | "
                  f"{r['ratio_to_floor']['p50']:10.2f} {r['ratio_to_floor']['p95']:5.2f} | "
                  f"{r['ratio_to_sequential']['p50']:8.2f} {r['ratio_to_sequential']['p95']:5.2f}")
    for size, result in ui.items():
        face = result["face_with_preview_ms"]
        print(f"UI {size}: face screen with preview p50 {face['p50']:.1f} ms, p95 {face['p95']:.1f} ms "
              f"({face['n']} frames); all screens p95 {result['all_screens_ms']['p95']:.1f} ms" if face else
              f"UI {size}: no face frames recorded")
    print(f"peak RSS {rss_mb:.0f} MB")
    for target in targets:
        value = target["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {'ok  ' if target['pass'] else 'MISS'} {target['target']}: {shown}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed check-ins per path and rate (default 50)")
    parser.add_argument("--alone-runs", type=int, default=20,
                        help="chip part / face decision measurements alone per path and rate (default 20)")
    parser.add_argument("--rates", type=int, nargs="+", default=[115200, 921600])
    parser.add_argument("--verbose", action="store_true", help="print each visit's phases")
    parser.add_argument("--no-write", action="store_true", help="print only (quick runs)")
    args = parser.parse_args(argv)
    from firmware.memory import release_free_memory, tune_malloc

    tune_malloc()  # as `uketsuke run` does: the bench measures a kiosk process
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

    import logging

    logging.basicConfig(level=logging.WARNING)
    from firmware.card.cvc import load_issuer_keys
    from firmware.config import Broker, Config
    from firmware.steps.face import FaceEngine
    from terminal.app import ReferenceTerminal
    from ui.demo import demo_catalogue

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flow-bench-") as scratch_name:
        scratch = Path(scratch_name)
        profile = demo_catalogue(scratch, [PROFILE])[PROFILE]
        issuer_dir = profile.cvc_issuer_public_pem.parent
        issuer_keys = load_issuer_keys(issuer_dir)
        config = Config()
        memory = {"after_imports": rss_mb()}
        engine = FaceEngine.shared(config.face.passive_liveness)
        engine.warm_up()
        release_free_memory()  # as Kiosk's warm-up does
        memory["after_model_load"] = rss_mb()
        warm_sim_person(profile)
        memory["after_sim_poses"] = rss_mb()
        broker = Mosquitto(scratch)
        terminal = ReferenceTerminal(Broker(port=broker.port, keepalive_s=5, insecure_local=True),
                                     site=config.site_id,
                                     issuer_keys=issuer_keys)
        terminal.start()
        ui_frames: list = []
        rates: dict = {}
        try:
            if not terminal.wait_connected(10):
                raise SystemExit("the terminal did not connect to mosquitto")
            for rate in args.rates:
                alone = bench_alone(rate, profile, issuer_keys, engine, config, args.alone_runs, scratch)
                memory[f"after_alone_{rate}"] = rss_mb()
                visits = bench_flow(rate, profile, issuer_dir, terminal, broker.port, args.runs, scratch, ui_frames,
                                    args.verbose)
                rates[str(rate)] = {path: report_path(path, visits[path], alone) for path in ("face", "pin")}
                rates[str(rate)]["failed_visits"] = visits["failures"]
                memory[f"after_flow_{rate}"] = rss_mb()
        finally:
            terminal.stop()
            broker.stop()
    ui = report_ui(ui_frames)
    peak_mb = peak_rss_mb()
    targets = judge(rates, ui, peak_mb)
    print_table(rates, ui, peak_mb, targets)
    results = {
        "benchmark": "tap (card put in the emulated PN532's field) → the terminal's ack at the kiosk "
                     "(link.on_answer), face and PIN paths, nfcpy PN532 driver on the PN532 emulator, "
                     "face camera paced at 30 fps, patient answering at once",
        "broker": "mosquitto (separate process, MQTT 5), ReferenceTerminal in the bench process",
        "ui": "ScreenRenderer on a 30 fps thread in the kiosk process (SDL dummy); 800x480 on even runs, "
              "1280x800 on odd",
        "floor_model": "chip: the run's APDU I-blocks, UART 10 bits/byte at the rate for one "
                       "InCommunicateThru+ACK+answer each + RF 106 kbit/s (hal/sim/link_timing.py); face: "
                       "capture_and_decide alone on the paced camera; overlap floor = max(chip, face); "
                       "sequential = chip part alone + face decision alone; ratios quantile by quantile",
        "runs_per_path_and_rate": args.runs,
        "alone_runs_per_path_and_rate": args.alone_runs,
        "wall_time_s": time.monotonic() - started,
        "load_average_at_end": list(os.getloadavg()),
        "rates": rates,
        "ui_frame_ms": ui,
        "peak_rss_mb": peak_mb,
        "rss_mb_at": memory,
        "targets": targets,
        "all_targets_met": all(t["pass"] for t in targets),
    }
    if not args.no_write:
        print(f"wrote {write_results('flow', results)}")
    return 0 if results["all_targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
