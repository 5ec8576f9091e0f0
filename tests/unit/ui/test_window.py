"""view_of reads the session defensively; the window posts a touched button's event with its data."""

from __future__ import annotations

import datetime as dt
import enum
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pygame
import pytest

from firmware.card.summary import CardFacts
from firmware.flow.session import CheckInSession, Token
from tests.unit.ui.views import SHUFFLED
from ui.screens import DEFAULT_PIN_KEYS, ScreenView
from ui.window import FLOW_EVENT_NAMES, FLOW_EVENTS, KioskWindow, view_of


class FakeRunner:
    def __init__(self, flow):
        self.flow = flow
        self.calls = []

    def call(self, function):
        self.calls.append(function)
        future = Future()
        future.set_result(function(self.flow))
        return future


class FakeKiosk:
    """What the window touches of a Kiosk: flow (state, token, language, session), problems, post, runner."""

    def __init__(self, state: str = "idle", session=None):
        self.flow = SimpleNamespace(state_id=state, token=Token("visit", 1), language="ja",
                                    session=session if session is not None else CheckInSession())
        self.problems: list[str] = []
        self.posted: list[tuple[str, Token | None, dict]] = []
        self.runner = FakeRunner(self.flow)
        self.reader = SimpleNamespace()

    def post(self, event: str, token=None, /, **data):
        self.posted.append((event, token, data))
        future = Future()
        future.set_result(True)
        return future


class Guidance(enum.Enum):
    TURN_LEFT = "turn_left"


@dataclass(frozen=True)
class FaceSnapshot:
    step: str = "capture"
    prompt: object = None
    box: tuple | None = None  # x, y, w, h
    preview: np.ndarray | None = None
    challenge: object = None


class FaceProgress:
    """Like firmware.flow.session.FaceProgress: the worker swaps in a new snapshot per frame."""

    def __init__(self, **snapshot):
        self.snapshot = FaceSnapshot(**snapshot)


@dataclass(frozen=True)
class Item:
    key: str
    label: str


POLICY = SimpleNamespace(item=[Item("PharmacistsInfo", "Medication information"),
                               Item("SpecificHealthCheckupsInfo", "Specific health checkup information")])


def full_session() -> CheckInSession:
    session = CheckInSession()
    not_after = (dt.datetime.now(dt.UTC) + dt.timedelta(days=40, hours=1)).isoformat()
    session.card = CardFacts(token_kind="card", cert_der=b"", cert_status="expiring", not_after=not_after)
    for digit in (7, 7, 7):
        session.pin.append_digit(digit)
    extra = dict(
        methods=("face", "pin", "visual"), notice="pin_wrong", face_tries_left=2,
        face=FaceProgress(prompt=Guidance.TURN_LEFT, box=(1, 2, 30, 40),
                          preview=np.zeros((12, 16, 3), np.uint8)),
        pin_tries_left=2, pin_keys=SHUFFLED, proxy=True,
        context=SimpleNamespace(registered=True, previous_consent="2025-01-01T09:00:00+09:00", eligibility=None),
        prescription="paper", answer="valid", terminal_online=False, more_time_for="pin",
    )
    for name, value in extra.items():
        setattr(session, name, value)
    session.consent = {"SpecificHealthCheckupsInfo": 0, "PharmacistsInfo": 1}
    return session


@pytest.fixture()
def window():
    made = []

    def make(kiosk, **options):
        made.append(KioskWindow(kiosk, **options))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_view_of_a_fresh_session_uses_defaults():
    view = view_of(FakeKiosk("reading"), now_s=1.0)
    assert view == ScreenView(state="reading", token=Token("visit", 1), t_s=1.0, face_tries_left=3,
                              pin_keys=tuple(range(10)))


def test_view_of_a_session_without_most_attributes():
    session = SimpleNamespace(card=None)
    view = view_of(FakeKiosk("pin", session), now_s=0.0)
    assert (view.pin_length, view.pin_capacity, view.pin_keys) == (0, 4, DEFAULT_PIN_KEYS)
    assert view.methods == () and view.consent_items == () and view.preview is None and view.terminal_online


def test_view_of_reads_every_session_field():
    session = full_session()
    view = view_of(FakeKiosk("choose_method", session), now_s=2.5)
    assert view.pin_length == 3 and view.pin_capacity == 4
    assert view.pin_keys == SHUFFLED
    assert "777" not in repr(view)
    assert (view.card_kind, view.cert_status, view.days_left) == ("card", "expiring", 40)
    assert view.methods == ("face", "pin", "visual") and view.notice == "pin_wrong"
    assert (view.face_tries_left, view.pin_tries_left, view.proxy) == (2, 2, True)
    assert (view.face_step, view.face_prompt, view.face_box) == ("capture", "turn_left", (1.0, 2.0, 30.0, 40.0))
    assert view.preview is session.face.snapshot.preview  # not copied: the session wipes it in place
    assert view.consent_items == (("SpecificHealthCheckupsInfo", "Specific health checkup information", False),
                                  ("PharmacistsInfo", "Medication information", True))
    assert view.previous_consent_available
    assert (view.prescription, view.answer, view.terminal_online, view.more_time_for) == ("paper", "valid", False,
                                                                                         "pin")


def test_view_of_lists_consent_in_the_policys_order_with_its_labels():
    session = full_session()
    session.consent = {"SpecificHealthCheckupsInfo": 1, "PharmacistsInfo": 2}  # 2: the terminal's, not a yes
    kiosk = FakeKiosk("consent_items", session)
    kiosk.flow.policy = POLICY
    view = view_of(kiosk, now_s=0.0)
    assert view.consent_items == (("PharmacistsInfo", "Medication information", False),
                                  ("SpecificHealthCheckupsInfo", "Specific health checkup information", True))


def test_view_of_takes_the_challenge_when_there_is_no_prompt():
    session = full_session()
    session.face = FaceProgress(prompt="", challenge=SimpleNamespace(kind=SimpleNamespace(value="blink")))
    session.consent = {"PharmacistsInfo": {"flag": 1, "time": "x"}, "Other": 0}
    session.days_left = 3
    view = view_of(FakeKiosk("face", session), now_s=0.0)
    assert view.face_prompt == "blink" and view.days_left == 3 and view.face_box is None
    assert view.consent_items == (("PharmacistsInfo", "Medication information", True), ("Other", "Other", False))


def test_view_of_a_bare_face_progress_and_odd_keys():
    session = full_session()
    session.face = FaceSnapshot(step="chip")  # an object with the fields itself also works
    session.pin_keys = (1, 1, 2)
    view = view_of(FakeKiosk("face", session), now_s=0.0)
    assert view.face_step == "chip" and view.pin_keys == DEFAULT_PIN_KEYS


def test_every_button_event_is_posted_with_its_data_and_the_shown_token(window):
    kiosk = FakeKiosk("pin", full_session())
    win = window(kiosk)
    win.draw()
    shown = kiosk.flow.token
    kiosk.flow.token = Token("visit", 2)  # the flow moved on: the token posted is the one the finger saw
    (five,) = [b for b in win.renderer.buttons if b.event == "pin_digit" and b.data == {"digit": 5}]
    pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, x=five.rect.centerx / 800, y=five.rect.centery / 480,
                                         touch_id=0, finger_id=0))
    win.run(max_frames=1)
    assert kiosk.posted == [("pin_digit", shown, {"digit": 5})]
    for event in sorted(FLOW_EVENTS - {"pin_digit"}):
        win.touch((event, {"item": "x"} if event == "consent_toggle" else {}))
    assert [p[0] for p in kiosk.posted[1:]] == [FLOW_EVENT_NAMES.get(e, e) for e in sorted(FLOW_EVENTS - {"pin_digit"})]
    assert "show_phone_help" in [p[0] for p in kiosk.posted]
    assert kiosk.posted[-1][1] == Token("visit", 2)  # drawn again by run(): the new screen's token


class TouchKiosk(FakeKiosk):
    """The kiosk of #10: ``touch`` sends keypad digits to the flow's keypad, the rest as events."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.touched = []

    def touch(self, event, token, /, **data):
        self.touched.append((event, token, data))


def test_a_kiosk_with_touch_gets_every_button(window):
    kiosk = TouchKiosk("pin", full_session())
    win = window(kiosk)
    win.draw()
    win.touch(("pin_digit", {"digit": 0}))
    win.touch(("phone_help", {}))
    assert kiosk.touched == [("pin_digit", Token("visit", 1), {"digit": 0}),
                             ("show_phone_help", Token("visit", 1), {})]
    assert kiosk.posted == []


def test_without_touch_a_digit_goes_to_the_flows_keypad_not_into_an_event(window):
    kiosk = FakeKiosk("pin", full_session())
    typed = []
    kiosk.flow.type_digit = lambda digit, token: typed.append((digit, token))
    kiosk.flow.delete_digit = lambda token: typed.append(("delete", token))
    win = window(kiosk)
    win.draw()
    win.touch(("pin_digit", {"digit": 4}))
    win.touch(("pin_delete", {}))
    assert typed == [(4, Token("visit", 1)), ("delete", Token("visit", 1))] and kiosk.posted == []


def test_language_is_a_call_not_an_event(window):
    kiosk = FakeKiosk("idle")
    win = window(kiosk)
    win.draw()
    win.touch(win.renderer.hit(next(b for b in win.renderer.buttons if b.event == "language").rect.center))
    assert kiosk.posted == [] and len(kiosk.runner.calls) == 1 and kiosk.flow.language == "en"
    win.touch("cancel")  # an event name alone still works
    win.touch(None)
    assert kiosk.posted == [("cancel", Token("visit", 1), {})]


def test_a_1280x800_window_maps_touches_to_its_own_pixels(window):
    kiosk = FakeKiosk("consent_items", full_session())
    win = window(kiosk, size=(1280, 800))
    win.draw()
    assert win.surface.get_size() == (1280, 800) and win.renderer.size == (1280, 800)
    toggle = next(b for b in win.renderer.buttons if b.event == "consent_toggle")
    pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, x=toggle.rect.centerx / 1280,
                                         y=toggle.rect.centery / 800, touch_id=0, finger_id=0))
    win.run(max_frames=1)
    assert kiosk.posted == [("consent_toggle", Token("visit", 1), {"item": "SpecificHealthCheckupsInfo"})]


def test_a_screenshot_goes_where_it_is_told(window, tmp_path):
    win = window(FakeKiosk("done", full_session()))
    path = win.screenshot(tmp_path / "shots" / "done.png")
    assert path.is_file() and path.parent == tmp_path / "shots"
