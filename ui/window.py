"""The kiosk's pygame window (or a headless surface): render the flow, turn touches into events.

On a Pi it runs fullscreen through SDL's ``kmsdrm`` driver; on a desktop in a window; in tests and
headless demos with ``SDL_VIDEODRIVER=dummy``, saving screenshots on request. With a simulated
reader, the keys C (tap the demo card) and R (remove it) stand in for a patient.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path

import numpy as np
import pygame

from firmware.app import Kiosk
from firmware.flow.session import PIN_DIGITS
from ui.i18n import available_languages
from ui.messages import CONSENT_ITEMS
from ui.screens import DEFAULT_PIN_KEYS, PANELS, SIZE, ScreenRenderer, ScreenView

log = logging.getLogger(__name__)


def _key(value) -> str:
    """A plain string key from a str, an enum (its value) or an object with a ``kind`` (a challenge)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    if hasattr(value, "kind"):
        return _key(value.kind)
    return ""


def _int_or_none(value) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _box(value) -> tuple[float, float, float, float] | None:
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return x0, y0, x1, y1


def _days_until(not_after, now: dt.datetime | None = None) -> int | None:
    """Whole days from now to the certificate's ``not_after`` (ISO text or datetime); None if unknown."""
    if not not_after:
        return None
    try:
        end = not_after if isinstance(not_after, dt.datetime) else dt.datetime.fromisoformat(str(not_after))
    except ValueError:
        return None
    if end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0, (end - now).days)


def _agreed(flag) -> bool:
    """A consent flag as the flow keeps it: ORCA's 1 (同意あり); 0, 2 and 3 are not a yes from here."""
    if isinstance(flag, dict):
        flag = flag.get("flag", 0)
    return flag is True or (not isinstance(flag, bool) and flag == 1)


def _consent_items(flow, session) -> tuple[tuple[str, str, bool], ...]:
    """(item, label msgid, agreed) in the order of the flow's consent policy (``flow.policy.item``:
    key + label), else of ``session.consent`` with the labels of :data:`ui.messages.CONSENT_ITEMS`."""
    consent = getattr(session, "consent", None) or {}
    try:
        consent = dict(consent)
        policy_items = getattr(getattr(flow, "policy", None), "item", None)
        if policy_items:
            pairs = [(str(i.key), str(i.label)) for i in policy_items]
        else:
            pairs = [(str(key), CONSENT_ITEMS.get(key, str(key))) for key in consent]
        return tuple((key, label, _agreed(consent.get(key, 0))) for key, label in pairs)
    except (TypeError, ValueError, AttributeError):
        return ()


def _pin_length(pin) -> tuple[int, int]:
    """(digits typed, capacity) of the session's SecretBuffer: its length only, never its digits."""
    try:
        return len(pin), int(getattr(pin, "capacity", PIN_DIGITS))
    except TypeError:
        return 0, PIN_DIGITS


def _preview(value) -> np.ndarray | None:
    if isinstance(value, np.ndarray) and value.ndim in (2, 3) and value.size:
        return value
    return None


def _keys(value) -> tuple[int, ...]:
    try:
        keys = tuple(int(k) for k in value)
    except (TypeError, ValueError):
        return DEFAULT_PIN_KEYS
    return keys if sorted(keys) == list(range(10)) else DEFAULT_PIN_KEYS


def view_of(kiosk: Kiosk, now_s: float | None = None) -> ScreenView:
    """What the screen shows now, derived from the flow (no personal data crosses this line).

    Read from the UI thread without stopping the flow: each field is one attribute read, and the
    token tells the flow thread which state entry a touch on this screen was meant for. Fields the
    session does not have (yet) read as their defaults. ``now_s`` is the animation clock (default
    :func:`time.monotonic`).
    """
    flow = kiosk.flow
    session = flow.session
    card = getattr(session, "card", None)
    face = getattr(session, "face", None)
    face = getattr(face, "snapshot", face)  # FaceProgress holds an immutable FaceSnapshot: read it once
    context = getattr(session, "context", None)
    pin_length, pin_capacity = _pin_length(getattr(session, "pin", None))
    days_left = _int_or_none(getattr(session, "days_left", None))
    if days_left is None and card is not None:
        days_left = _days_until(getattr(card, "not_after", ""))
    previous = getattr(context, "previous_consent", None) if context is not None else None
    if previous is None and context is not None:
        previous = getattr(context, "previous_consent_at", None)
    prompt = _key(getattr(face, "prompt", None)) or _key(getattr(face, "challenge", None))
    return ScreenView(
        state=flow.state_id, token=flow.token, language=flow.language,
        t_s=time.monotonic() if now_s is None else now_s,
        error_kind=getattr(session, "error_kind", ""), error_lineage=tuple(getattr(session, "error_lineage", ())),
        card_kind=getattr(card, "token_kind", "") if card else "",
        cert_status=getattr(card, "cert_status", "") if card else "",
        days_left=days_left,
        problems=tuple(kiosk.problems),
        methods=tuple(_key(m) for m in (getattr(session, "methods", None) or ())),
        notice=_key(getattr(session, "notice", "")),
        proxy=bool(getattr(session, "proxy", False)),
        face_tries_left=_int_or_none(getattr(session, "face_tries_left", None)),
        face_step=_key(getattr(face, "step", None)),
        face_prompt=prompt,
        face_box=_box(getattr(face, "box", None)),
        preview=_preview(getattr(face, "preview", None)),
        pin_length=pin_length, pin_capacity=pin_capacity,
        pin_tries_left=_int_or_none(getattr(session, "pin_tries_left", None)),
        pin_keys=_keys(getattr(session, "pin_keys", None)),
        consent_items=_consent_items(flow, session),
        previous_consent_available=bool(previous),
        prescription=_key(getattr(session, "prescription", "")),
        answer=_key(getattr(session, "answer", None)) or None,
        terminal_online=bool(getattr(session, "terminal_online", True)),
        more_time_for=_key(getattr(session, "more_time_for", "")),
    )


#: a button's event → the flow's event, where the names differ: python-statemachine keeps states and
#: events in one namespace, so the flow cannot have an event named like its state ``phone_help``
FLOW_EVENT_NAMES = {"phone_help": "show_phone_help"}

#: button events the window hands to the flow (with the shown view's token and the button's data)
FLOW_EVENTS = frozenset({
    "phone_help", "call_staff", "back", "cancel", "choose_face", "choose_pin", "choose_visual", "proxy",
    "pin_digit", "pin_delete", "pin_submit", "notice_ok", "register_yes", "register_no", "consent_all",
    "consent_choose", "consent_same", "consent_none", "consent_toggle", "consent_done",
    "prescription_electronic", "prescription_paper", "more_time_yes", "more_time_no",
})


class KioskWindow:
    """``size``: the panel in pixels (default: the display's own size when fullscreen on a known panel,
    else 800×480); ``px_per_mm``: its density (default from :data:`ui.screens.PANELS`)."""

    def __init__(self, kiosk: Kiosk, fullscreen: bool = False, demo_card=None,
                 size: tuple[int, int] | None = None, px_per_mm: float | None = None, demo_cards: dict | None = None):
        self.kiosk = kiosk
        self.demo_card = demo_card
        #: number keys 1–9, 0 tap these simulated cards and phones (their holder steps in front of the camera)
        self.demo_cards = list((demo_cards or {}).items())[:10]
        self._face_helper = None
        pygame.display.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        if size is None:
            size = SIZE
            if fullscreen:
                info = pygame.display.Info()
                if (info.current_w, info.current_h) in PANELS:
                    size = (info.current_w, info.current_h)
        self.size = (int(size[0]), int(size[1]))
        self.surface = pygame.display.set_mode(self.size, flags)
        pygame.display.set_caption("uketsuke 受付")
        self.renderer = ScreenRenderer(self.size, px_per_mm=px_per_mm)
        self.clock = pygame.time.Clock()
        self.running = False
        self.shown: ScreenView | None = None  # the view last drawn: touches belong to it

    @property
    def headless(self) -> bool:
        return os.environ.get("SDL_VIDEODRIVER") == "dummy"

    def draw(self) -> None:
        self.shown = view_of(self.kiosk)
        self.renderer.render(self.surface, self.shown)
        pygame.display.flip()

    def screenshot(self, path: Path) -> Path:
        """Render the current state and save it as PNG (screens show no personal data)."""
        self.draw()
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.surface, str(path))
        return path

    def handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
            self.running = False
        elif event.type in (pygame.MOUSEBUTTONDOWN, pygame.FINGERDOWN):
            if event.type == pygame.MOUSEBUTTONDOWN and getattr(event, "touch", False):
                return  # SDL's mouse copy of a touch we handle as FINGERDOWN: acting on both counts it twice
            if event.type == pygame.FINGERDOWN:
                position = (int(event.x * self.size[0]), int(event.y * self.size[1]))
            else:
                position = event.pos
            self.touch(self.renderer.hit(position))
        elif event.type == pygame.KEYDOWN and hasattr(self.kiosk.reader, "present"):
            number = event.key - pygame.K_0 if pygame.K_0 <= event.key <= pygame.K_9 else None
            if number is not None and self.demo_cards:
                index = (number - 1) % 10
                if index < len(self.demo_cards):
                    self.tap_demo_card(self.demo_cards[index][1].directory)
            elif event.key == pygame.K_c and self.demo_card is not None:
                self.tap_demo_card(self.demo_card)
            elif event.key == pygame.K_r:
                self.kiosk.reader.remove()

    def tap_demo_card(self, directory) -> None:
        """Demo: the card's holder steps in front of the simulated face camera and taps the card.

        The simulated person cannot see the screen, so a helper performs the face challenge for them;
        every button is still the user's.
        """
        camera = getattr(self.kiosk, "face_camera", None)
        if hasattr(camera, "present"):
            from hal.sim.face_scene import Person
            from ui.patient import Patient

            person = Person.holder(directory)
            camera.present(person)
            if self._face_helper is not None:
                self._face_helper.detach()
                self.kiosk.listeners.remove(self._face_helper._on_state)
            self._face_helper = Patient(person=person, only_face=True).attach(self.kiosk)
        self.kiosk.reader.present(directory)

    def touch(self, hit: tuple[str, dict] | str | None, data: dict | None = None) -> None:
        """A button was pressed: screens emit events, the kiosk decides (on its flow thread).

        ``hit`` is what :meth:`ScreenRenderer.hit` returned, ``(event, data)``, or an event name. Flow
        events are posted with the token of the view the finger was on, so a touch meant for a screen
        that has gone is dropped by the flow thread.
        """
        if hit is None:
            return
        event_name, data = (hit, data or {}) if isinstance(hit, str) else (hit[0], dict(hit[1] or {}))
        token = self.shown.token if self.shown is not None else None
        if event_name in FLOW_EVENTS:
            name = FLOW_EVENT_NAMES.get(event_name, event_name)
            touch = getattr(self.kiosk, "touch", None)
            if callable(touch):  # Kiosk.touch: keypad digits go to the flow's keypad, never into event data
                touch(name, token, **data)
            elif name in ("pin_digit", "pin_delete") and hasattr(self.kiosk.flow, "type_digit"):
                digit = data.get("digit")
                self.kiosk.runner.call(lambda flow: flow.type_digit(digit, token) if name == "pin_digit"
                                       else flow.delete_digit(token))
            else:
                self.kiosk.post(name, token, **data)
        elif event_name == "language":
            languages = available_languages()

            def next_language(flow) -> None:
                if token is not None and flow.token != token:
                    return  # the screen changed under the finger
                current = flow.language
                following = languages[(languages.index(current) + 1) % len(languages)] if current in languages else "ja"
                flow.language = flow.session.language = following

            self.kiosk.runner.call(next_language)
        else:
            log.warning("a button with no event handler: %s", event_name)

    def run(self, max_frames: int | None = None) -> None:
        """The main loop at 30 fps until closed (or ``max_frames``, for tests)."""
        self.running = True
        frames = 0
        while self.running and (max_frames is None or frames < max_frames):
            for event in pygame.event.get():
                self.handle(event)
            self.draw()
            self.clock.tick(30)
            frames += 1

    def close(self) -> None:
        pygame.display.quit()
