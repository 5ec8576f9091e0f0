"""Named check-in scenarios: every path of the kiosk played on simulated devices, with screenshots.

A scenario is a card or phone from the simulated catalogue (:mod:`hal.sim.card.catalogue`), a
person in front of the face camera, a :class:`~ui.patient.Patient` script, what the terminal knows
about the card, and what staff answer to a visual check. :func:`play` taps the card with a
:class:`Hand`, lets the patient answer every screen, saves ``NN-<state>.png`` for each screen on the
way, and returns the line ``make run`` prints: ``{"scenario", "method", "result_id",
"terminal_received", "consent", ...}``.

The same scenarios run as end-to-end tests over the real stacks (tests/e2e/test_paths.py): the
hand then inserts the card through vpcd into pcscd instead of into the in-process reader.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: Final states of a visit (the patient takes the card away after them).
FINAL = ("done", "unusable", "failed", "removed")


@dataclass(frozen=True)
class Scenario:
    name: str
    profile: str  # a name of hal.sim.card.catalogue.CATALOGUE
    about: str
    patient: dict = field(default_factory=dict)  # Patient(**patient)
    person: str = "holder"  # in front of the face camera: holder / other / print / replay / nobody
    #: what the terminal's registry says of this card: registered, previous_consent, eligibility
    registry: dict = field(default_factory=dict)
    staff: str | None = None  # answer to a visual check from the terminal: "ok" / "ng"
    ends: str = "done"  # the final state the scenario must reach
    method: str | None = None  # the method the result must carry
    timeouts: dict = field(default_factory=dict)  # shorter timeouts for this scenario (more-time)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("face", "card-valid", "the holder matches the card photo", {"method": "face"}, method="face"),
    Scenario("face-other-person", "card-valid", "someone else: no match, then the PIN",
             {"method": "face", "fallback": "pin"}, person="other", method="pin"),
    Scenario("face-printed-photo", "card-valid", "a printed photo of the holder: not live, then staff",
             {"method": "face", "fallback": "visual"}, person="print", staff="ok", method="visual"),
    Scenario("face-replayed-screen", "card-valid", "a video of the holder on a screen: not live, then the PIN",
             {"method": "face", "fallback": "pin"}, person="replay", method="pin"),
    Scenario("face-only-card", "face-only-valid", "顔認証マイナンバーカード: face (no PIN on it)",
             {"method": "face"}, method="face"),
    Scenario("collation-protected", "card-collation-low",
             "照合番号B counter low: the kiosk spends no try and offers the PIN", {"method": "face", "fallback": "pin"},
             method="pin"),
    Scenario("pin", "card-valid", "the 4-digit PIN", {"method": "pin"}, method="pin"),
    Scenario("pin-wrong-then-right", "card-valid", "a wrong PIN shows the tries left; then the right one",
             {"method": "pin", "pin": "1111,1234"}, method="pin"),
    Scenario("pin-locked", "card-pin-locked", "a locked PIN: how to reset it, and staff instead",
             {"method": "pin", "fallback": "visual"}, staff="ok", method="visual"),
    Scenario("staff-check", "card-valid", "目視確認: staff confirm at the terminal", {"method": "visual"},
             staff="ok", method="visual"),
    Scenario("staff-refuses", "card-valid", "staff cannot confirm the person", {"method": "visual"},
             staff="ng", ends="failed"),
    Scenario("proxy-child", "card-child", "a parent operates for a child (代理): PIN, proxy in the result",
             {"method": "pin", "proxy": True}, method="pin"),
    Scenario("iphone", "iphone-valid", "iPhone: Face ID on the phone, held on the reader", {},
             method="smartphone"),
    Scenario("android", "android-valid", "Android: the smartphone PIN typed on the kiosk", {"pin": "1234"},
             method="smartphone"),
    Scenario("phone-expired", "iphone-expired", "a phone whose certificate expired: cannot be used", {},
             ends="unusable"),
    Scenario("card-expiring", "card-expiring", "certificate ends within 3 months: renewal alert, then on",
             {"method": "pin"}, method="pin"),
    Scenario("card-grace", "card-grace", "certificate expired within the grace: eligibility only, no consent",
             {"method": "pin"}, method="pin"),
    Scenario("card-unusable", "card-unusable", "certificate expired long ago: 資格確認書, ask at reception", {},
             ends="unusable"),
    Scenario("first-registration", "card-valid", "not yet registered for insurance use: asked and registered",
             {"method": "pin", "register": True}, registry={"registered": False}, method="pin"),
    Scenario("consent-same-as-before", "card-valid", "a previous consent here: 前回と同じ",
             {"method": "pin", "consent": "same"},
             registry={"previous_consent": {"PharmacistsInfo": 1, "DiagnosisInfo": 1}}, method="pin"),
    Scenario("consent-item-by-item", "card-valid", "consent chosen item by item, paper prescription",
             {"method": "pin", "consent": "items", "items": ("PharmacistsInfo", "AllergyInfo"),
              "prescription": "paper"}, method="pin"),
    Scenario("ineligible", "card-valid", "the terminal finds no eligibility: please ask at reception",
             {"method": "pin"}, registry={"eligibility": "no_record"}, method="pin"),
    Scenario("card-removed", "card-valid", "the card taken out during the PIN: the visit ends cleanly",
             {"method": "pin", "remove_in": "pin"}, ends="removed"),
    Scenario("more-time", "card-valid", "the patient hesitates: もう少し時間が必要ですか?",
             {"method": "pin", "hesitate_in": "choose_method"}, timeouts={"method_choice_s": 1.0}, method="pin"),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def _kinds() -> dict[str, str]:
    from hal.sim.card.catalogue import CATALOGUE

    return {name: entry.kind for name, entry in CATALOGUE.items()}


CATALOGUE_KIND = _kinds()


class SimHand:
    """The patient's hand at the in-process simulated reader."""

    def __init__(self, reader):
        self.reader = reader

    def present(self, profile_dir: Path) -> None:
        self.reader.present(profile_dir)

    def remove(self) -> None:
        self.reader.remove()


def registry_entry(profile_dir: Path, history: dict):
    """What the terminal's registry knows of this card for the scenario (default: registered, eligible)."""
    import datetime as dt

    from terminal.registry import RegistryEntry, cert_sha256

    der = (Path(profile_dir) / "ef" / "D392F000260100000001" / "000A.bin").read_bytes()
    fields = dict(history)
    fields.setdefault("insured", demo_insured(Path(profile_dir).name))
    if "previous_consent" in fields:
        fields.setdefault("previous_consent_at", dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    return RegistryEntry(sha256=cert_sha256(der), **fields)


def demo_insured(label: str):
    """A fictitious insured record for a demo card (what the national system would answer): the clinic
    files the demo leaves in var/terminal/face/ carry it. Insurer 99999999 and the names are made up."""
    import datetime as dt
    import zlib

    from terminal.registry import InsuredRecord

    number = 1000 + zlib.crc32(label.encode()) % 9000
    return InsuredRecord(insurer_number="99999999", symbol="デモ", number=str(number), branch="00",
                         name="受付 花子", name_kana="ウケツケ ハナコ", sex="2", birthdate=dt.date(1989, 3, 31),
                         address="東京都千代田区千代田一丁目１番", post_number="100-0001", share_percent=30,
                         limit_category="A01")


def person_for(scenario: Scenario, profile_dir: Path):
    from hal.sim.face_scene import Person

    if scenario.person == "nobody" or CATALOGUE_KIND.get(scenario.profile) in ("android", "iphone"):
        return None  # a phone's holder proves themselves on the phone
    holder = Person.holder(profile_dir)
    return {"holder": holder, "other": Person.other(12345), "print": Person.printed_photo(holder),
            "replay": Person.replayed_screen(holder), "nobody": None}[scenario.person]


class Screenshots:
    """Saves ``NN-<state>.png`` for every screen of a visit (and the face capture with its preview)."""

    def __init__(self, window, out_dir: Path | None):
        self.window, self.out_dir = window, out_dir
        self.paths: list[Path] = []
        self._lock = threading.Lock()
        self.active = False
        self.t0 = time.monotonic()
        self.timeline: list[tuple[float, str]] = []  # (seconds since the tap, state)

    def take(self, label: str) -> None:
        if self.window is None or self.out_dir is None or not self.active:
            return
        with self._lock:
            path = self.out_dir / f"{len(self.paths) + 1:02d}-{label}.png"
            self.paths.append(self.window.screenshot(path))

    def on_state(self, state: str, session) -> None:  # flow thread: the screen as the patient sees it
        if self.active:
            self.timeline.append((round(time.monotonic() - self.t0, 3), state))
        self.take(state)


def play(scenario: Scenario, kiosk, terminal, catalogue: dict, *, hand=None, window=None,
         out_dir: Path | None = None, timeout_s: float = 90.0) -> dict:
    """Play one scenario on a started kiosk (simulated cameras) against ``terminal``.

    Raises:
        RuntimeError: the visit did not reach the scenario's final state (the message says where it was).
    """
    from firmware.link.schemas import CommandName
    from ui.demo import wait_until
    from ui.patient import Patient

    info = catalogue[scenario.profile]
    hand = hand or SimHand(kiosk.reader)
    if not wait_until(lambda: kiosk.flow.state_id == "idle", 30):
        raise RuntimeError(f"{scenario.name}: the kiosk is {kiosk.flow.state_id!r}, not idle")
    person = person_for(scenario, info.directory)
    if person is None:
        kiosk.face_camera.leave()
    else:
        kiosk.face_camera.present(person)
    if hasattr(terminal, "registry"):
        terminal.registry.put(registry_entry(info.directory, scenario.registry))
    saved_timeouts = kiosk.flow.timeouts
    if scenario.timeouts:
        quicker = saved_timeouts.model_copy(update=scenario.timeouts)
        kiosk.runner.call(lambda flow: setattr(flow, "timeouts", quicker)).result(5)
    shots = Screenshots(window, out_dir / scenario.name if out_dir is not None else None)
    patient = Patient(person=person, hand=hand, **scenario.patient)
    kiosk.add_listener(shots.on_state)
    patient.attach(kiosk)
    results_before = set(kiosk.services.result_ids)
    shots.t0 = time.monotonic()
    shots.active = True
    hand.present(info.directory)
    try:
        if scenario.staff is not None:
            if not wait_until(lambda: kiosk.flow.state_id == "visual", timeout_s):
                raise RuntimeError(f"{scenario.name}: no visual check was asked (state {kiosk.flow.state_id!r})")
            name = CommandName.VISUAL_OK if scenario.staff == "ok" else CommandName.VISUAL_NG
            terminal.send_command(kiosk.config.site_id, kiosk.config.reader_id, name)
        if scenario.patient.get("method") == "face":
            def face_capture_shot():
                face = kiosk.flow.session.face
                return face is not None and face.snapshot.preview is not None
            if wait_until(lambda: face_capture_shot() or kiosk.flow.state_id in FINAL, timeout_s) and face_capture_shot():
                shots.take("face-capture")
        if not wait_until(lambda: kiosk.flow.state_id in FINAL, timeout_s):
            raise RuntimeError(f"{scenario.name}: stuck in {kiosk.flow.state_id!r} (screens: {patient.states})")
        final = kiosk.flow.state_id
        session = kiosk.flow.session
        line = {"scenario": scenario.name, "final": final, "method": session.method if final == "done" else None,
                "result_id": None, "terminal_received": False, "consent": None}
        if final == "done":
            def new_results():  # the state is "done" a moment before its result is handed to the link
                return [rid for rid in kiosk.services.result_ids if rid not in results_before]
            wait_until(new_results, 10)
            new = new_results()
            line["result_id"] = new[-1] if new else None
            line["consent"] = dict(session.consent)
            line["proxy"] = session.proxy
            received = wait_until(lambda: any(r.id == line["result_id"] for r in terminal.view.results), 20)
            line["terminal_received"] = received
            wait_until(lambda: kiosk.flow.session.answer is not None, 5)
            line["answer"] = kiosk.flow.session.answer
            shots.take("done-answer")
        if final != scenario.ends:
            raise RuntimeError(f"{scenario.name}: ended in {final!r}, expected {scenario.ends!r} "
                               f"(screens: {patient.states}; {session.error_kind or session.notice})")
        if scenario.method is not None and line["method"] != scenario.method:
            raise RuntimeError(f"{scenario.name}: the result says {line['method']!r}, expected {scenario.method!r}")
    finally:
        shots.active = False
        patient.detach()
        kiosk.listeners.remove(shots.on_state)
        kiosk.listeners.remove(patient._on_state)
        hand.remove()
        if scenario.timeouts:
            kiosk.runner.call(lambda flow: setattr(flow, "timeouts", saved_timeouts)).result(5)
        wait_until(lambda: kiosk.flow.state_id == "idle", 30)
    line["screenshots"] = [str(p) for p in shots.paths]
    line["timeline"] = shots.timeline
    line["seconds"] = round(time.monotonic() - shots.t0, 3)
    return line
