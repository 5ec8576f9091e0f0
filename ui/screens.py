"""Screens: render a :class:`ScreenView` onto the panel and turn touches into events.

A screen never reaches into the flow or a device: it is handed a view (plain values, what to show)
and returns the buttons it drew, so a touch becomes an event name and its data (``pin_digit``,
``{"digit": 7}``) for the kiosk to send to the flow. Japanese is primary (large), English is beside it
in smaller type (the other way round when the patient chose English).

Sizes are physical: :class:`ScreenRenderer` knows the panel's pixels per millimetre and makes every
touch target at least :data:`MIN_TARGET_MM` in both directions, on the 7" 800×480 and the 10.1"
1280×800 panel alike. Every text goes through one drawing function that shrinks it to fit and records
it in :attr:`ScreenRenderer.drawn`, so tests can check what was written where; the PIN field only
ever receives "●" strings (the view carries the number of digits typed, never a digit).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pygame
import pygame.freetype

from ui.fonts import japanese_font_path
from ui.i18n import bilingual
from ui.messages import (
    ANSWER_LABEL,
    ANSWER_TEXT,
    BUTTONS,
    CONSENT_OFF,
    CONSENT_ON,
    FACE_PROMPT_TEXT,
    FACE_STEP_LABELS,
    FACE_STEP_TEXT,
    FACE_STEPS,
    FACE_TRIES_LEFT,
    MORE_TIME_FOR,
    NOTICE_ALIASES,
    NOTICE_TEXT,
    PHONE_STATE_TEXT,
    PIN_LAST_TRY,
    PIN_TRIES_LEFT,
    PROXY_OFF,
    PROXY_ON,
    STATE_TEXT,
    error_text,
    notice_text,
)

SIZE = (800, 480)  # the 7" panel, the default
#: the panels the kiosk is built with: size → pixels per millimetre (active width 154 mm / 217 mm)
PANELS: dict[tuple[int, int], float] = {(800, 480): 800 / 154.0, (1280, 800): 1280 / 217.0}
MIN_TARGET_MM = 15.0
TARGET_MM = 16.0  # what buttons are drawn at: a margin over the minimum for rounding and bezels
PIN_MASK = "●"
PHONE_KINDS = ("android", "iphone")
DEFAULT_PIN_KEYS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)  # a phone's keypad: 1-9 in rows, 0 below 8
UNSHUFFLED = tuple(range(10))  # the session's "not shuffled": drawn as DEFAULT_PIN_KEYS

BACKGROUND = (250, 250, 247)
INK = (20, 24, 32)
MUTED = (90, 96, 110)
BUTTON_FILL = (225, 228, 235)
PRIMARY_FILL = (214, 230, 248)
ON_FILL = (206, 236, 214)
ON_INK = (0, 110, 55)
WARN = (170, 60, 0)
ACCENT = {"idle": (0, 94, 184), "reading": (0, 94, 184), "done": (0, 140, 70), "failed": (190, 30, 45),
          "unusable": (190, 30, 45), "removed": (190, 30, 45), "out_of_service": (120, 120, 120)}
BLUE = (0, 94, 184)


@dataclass(frozen=True)
class ScreenView:
    """Everything a screen may show: derived from the flow state and session, nothing personal.

    Plain values only; built by :func:`ui.window.view_of` from one read of each session attribute.
    """

    state: str
    token: tuple | None = None  # the flow's (session, entry) when this view was taken
    language: str = "ja"
    t_s: float = 0.0  # a clock (seconds) for animations: phone help, progress bars
    error_kind: str = ""
    error_lineage: tuple[str, ...] = ()
    card_kind: str = ""  # card | face-only | android | iphone ("" before the card is read)
    cert_status: str = ""  # valid | expiring | grace | unusable
    days_left: int | None = None  # days until the certificate expires (renewal alert, registration refusal)
    problems: tuple[str, ...] = ()  # device problems, for staff (technical English, small type)
    methods: tuple[str, ...] = ()  # offered on choose_method, in order: face, pin, visual
    notice: str = ""  # a key of ui.messages.NOTICE_TEXT (wrong PIN, no match, grace, offline, …)
    proxy: bool = False  # 代理: someone checks in for the card holder
    face_tries_left: int | None = None
    face_step: str = ""  # card_face | chip | capture | deciding
    face_prompt: str = ""  # a key of ui.messages.FACE_PROMPT_TEXT (move_closer, blink, turn_left, …)
    face_box: tuple[float, float, float, float] | None = None  # (x, y, width, height) in preview pixels
    preview: np.ndarray | None = field(default=None, compare=False, repr=False)  # H×W×3 uint8 RGB
    pin_length: int = 0  # digits typed so far: drawn as ● only
    pin_capacity: int = 4
    pin_tries_left: int | None = None
    #: the 10 digits in layout order (rows of three, the tenth below the middle); 0-9 in order means
    #: "not shuffled" and is drawn as a phone's keypad (1 2 3 / 4 5 6 / 7 8 9 / 0)
    pin_keys: tuple[int, ...] = DEFAULT_PIN_KEYS
    consent_items: tuple[tuple[str, str, bool], ...] = ()  # (item key, label msgid, agreed)
    previous_consent_available: bool = False
    prescription: str = ""  # electronic | paper | "" (not chosen yet)
    answer: str | None = None  # the terminal's eligibility: valid | invalid | no_record | None (not yet)
    terminal_online: bool = True
    more_time_for: str = ""  # the state whose time ran out (more_time)


@dataclass(frozen=True)
class Button:
    event: str
    rect: pygame.Rect
    data: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Drawn:
    """One text drawn by the last render: for tests (fits the surface? no digit in the PIN field?)."""

    text: str
    rect: pygame.Rect
    role: str  # title | text | notice | button | key | pin | staff


#: Text measurements kept per renderer. A face screen measures ~70 strings a frame (wrapping and
#: shrinking to fit, the same strings every frame); every screen of a visit together needs a few
#: hundred. The strings are the catalogue's, formatted with counts only (tries left, days left), the
#: staff's device problems, and ● masks for the PIN (never a digit typed): nothing that names the
#: patient. Still, the tries and days left belong to the visit, so the cache is emptied at idle.
MEASURE_CACHE_MAX = 512

_TOKENS = re.compile(r"[A-Za-z0-9'’\-.,:;!?()/%]+\s*|\s+|.[、。，．）」』！？：；ー]*")


class ScreenRenderer:
    """Draws every state of the check-in; :meth:`hit` maps a touch to the button drawn under it.

    ``size`` is the panel in pixels, ``px_per_mm`` its density (default: from :data:`PANELS`, else a
    7"-like 154 mm wide panel). ``mirror_preview`` shows the camera preview like a mirror.
    """

    def __init__(self, size: tuple[int, int] = SIZE, px_per_mm: float | None = None, mirror_preview: bool = True,
                 *, measure_cache: int = MEASURE_CACHE_MAX):
        if not pygame.freetype.get_init():
            pygame.freetype.init()
        self.size = (int(size[0]), int(size[1]))
        self.px_per_mm = float(px_per_mm) if px_per_mm else PANELS.get(self.size, self.size[0] / 154.0)
        self.mirror_preview = mirror_preview
        self.font = pygame.freetype.Font(str(japanese_font_path()), 24)
        self.font.pad = False
        scale = self.size[1] / 480
        self.sizes = {"title": round(34 * scale), "title2": round(21 * scale), "body": round(24 * scale),
                      "body2": round(17 * scale), "button": round(24 * scale), "button2": round(15 * scale),
                      "key": round(34 * scale), "pin": round(40 * scale), "small": round(15 * scale)}
        self.target = math.ceil(TARGET_MM * self.px_per_mm)  # button size, px
        self.margin = round(3 * self.px_per_mm)
        self.gap = round(2 * self.px_per_mm)
        self.buttons: list[Button] = []
        self.drawn: list[Drawn] = []
        self.regions: dict[str, pygame.Rect] = {}  # named areas of the last render (pin_field, preview)
        self._preview_map: tuple[pygame.Rect, float, int, bool] | None = None
        #: (text, size) → the font's rect for it, oldest first; at most ``measure_cache`` entries, emptied
        #: whenever the screen returns to idle (see :data:`MEASURE_CACHE_MAX`). The font's style and
        #: padding are set once above, so text and size are the whole key.
        self._measure_cap = max(0, int(measure_cache))
        self._measured: dict[tuple[str, int], tuple[int, int, int, int]] = {}
        self._last_state = ""

    # ------------------------------------------------------------------ text

    def _rect(self, text: str, size: int) -> pygame.Rect:
        """``font.get_rect(text, size=size)``, memoised (a new Rect each call: callers move it)."""
        key = (text, size)
        found = self._measured.get(key)
        if found is None:
            found = tuple(self.font.get_rect(text, size=size))
            if self._measure_cap:
                if len(self._measured) >= self._measure_cap:
                    del self._measured[next(iter(self._measured))]  # the oldest entry
                self._measured[key] = found
        return pygame.Rect(found)

    def _fit_size(self, text: str, size: int, width: int) -> int:
        rect = self._rect(text, size)
        if rect.width > width:
            size = max(8, int(size * width / rect.width))
            while size > 8 and self._rect(text, size).width > width:
                size -= 1
        return size

    def text(self, surface, text: str, size: int, colour, *, role: str = "text", max_width: int | None = None,
             **anchor) -> pygame.Rect:
        """Draw one line at ``anchor`` (``center=``, ``midtop=``, ``topleft=``…), shrunk to ``max_width``."""
        if not text:
            return pygame.Rect(0, 0, 0, 0)
        width = max_width if max_width is not None else self.size[0] - 2 * self.margin
        size = self._fit_size(text, size, width)
        rect = self._rect(text, size)
        for name, value in anchor.items():
            setattr(rect, name, value)
        rect.clamp_ip(surface.get_rect())
        self.font.render_to(surface, rect, text, colour, size=size)
        self.drawn.append(Drawn(text, rect.copy(), role))
        return rect

    def _wrap(self, text: str, size: int, width: int) -> list[str]:
        lines: list[str] = []
        line = ""
        for token in _TOKENS.findall(text):
            candidate = line + token
            if line and self._rect(candidate.rstrip(), size).width > width:
                lines.append(line.rstrip())
                line = token.lstrip()
            else:
                line = candidate
        if line.strip():
            lines.append(line.rstrip())
        if len(lines) >= 2 and " " not in lines[-2] and len(lines[-1]) <= 2 and len(lines[-2]) > 4:
            lines[-2], lines[-1] = lines[-2][:-2], lines[-2][-2:] + lines[-1]  # no lone character on a line
        return lines

    def paragraph(self, surface, texts: list[tuple[str, int, tuple]], rect: pygame.Rect, *, role: str = "text",
                  centre: bool = True, valign: str = "top") -> int:
        """Wrap ``(text, size, colour)`` blocks into ``rect``, shrinking them all until they fit.

        Returns the bottom of what was drawn.
        """
        texts = [t for t in texts if t[0]]
        if not texts or rect.width <= 0 or rect.height <= 0:
            return rect.top
        factor = 1.0
        while True:
            blocks = []
            height = 0
            for text, size, colour in texts:
                s = max(8, int(size * factor))
                lines = self._wrap(text, s, rect.width)
                line_h = round(s * 1.3)
                blocks.append((lines, s, colour, line_h))
                height += line_h * len(lines)
            height += round(4 * factor) * (len(blocks) - 1)
            if height <= rect.height or factor < 0.35:
                break
            factor *= 0.9
        y = rect.top if valign == "top" else rect.top + max(0, (rect.height - height) // 2)
        for lines, s, colour, line_h in blocks:
            for line in lines:
                if centre:
                    self.text(surface, line, s, colour, role=role, max_width=rect.width, midtop=(rect.centerx, y))
                else:
                    self.text(surface, line, s, colour, role=role, max_width=rect.width, topleft=(rect.left, y))
                y += line_h
            y += round(4 * factor)
        return y

    def bilingual_paragraph(self, surface, message: str, language: str, rect: pygame.Rect, colour=INK, *,
                            role: str = "text", big: str = "body", centre: bool = True, valign: str = "top",
                            **values) -> int:
        primary, secondary = bilingual(message, language)
        if values:
            primary, secondary = primary.format(**values), secondary.format(**values)
        return self.paragraph(surface, [(primary, self.sizes[big], colour), (secondary, self.sizes[big + "2"]
                                                                             if big + "2" in self.sizes else
                                                                             self.sizes["body2"], MUTED)],
                              rect, role=role, centre=centre, valign=valign)

    # ------------------------------------------------------------------ buttons

    def button(self, surface, event: str, rect: pygame.Rect, language: str, *, label: str | None = None,
               data: dict | None = None, fill=BUTTON_FILL, ink=INK, caption: str | None = None) -> Button:
        """A touch target with the bilingual ``label`` (msgid; default the event's) and an optional caption."""
        rect = pygame.Rect(rect)
        pygame.draw.rect(surface, fill, rect, border_radius=12)
        pygame.draw.rect(surface, MUTED, rect, width=2, border_radius=12)
        primary, secondary = bilingual(label or BUTTONS[event], language)
        if primary == secondary:
            secondary = ""
        inner = rect.inflate(-16, -8)
        size = self.sizes["button"]
        if self._rect(primary, size).width > inner.width:  # one smaller line reads better than two
            fitted = self._fit_size(primary, size, inner.width)
            size = fitted if fitted >= size * 0.6 else size
        lines = [(primary, size, ink), (secondary, min(size, self.sizes["button2"]), MUTED)]
        if caption:
            lines.append((caption, self.sizes["button2"], ink))
        self.paragraph(surface, lines, inner, role="button", valign="middle")
        made = Button(event, rect, dict(data or {}))
        self.buttons.append(made)
        return made

    def row(self, surface, items: list[tuple[str, dict]], rect: pygame.Rect, language: str, **style) -> list[Button]:
        """Buttons side by side across ``rect`` (``items``: (event, options for :meth:`button`))."""
        if not items:
            return []
        width = (rect.width - self.gap * (len(items) - 1)) // len(items)
        made = []
        for index, (event, options) in enumerate(items):
            cell = pygame.Rect(rect.left + index * (width + self.gap), rect.top, width, rect.height)
            made.append(self.button(surface, event, cell, language, **(style | options)))
        return made

    def bottom_rect(self, height: int | None = None) -> pygame.Rect:
        height = height or self.target
        w, h = self.size
        return pygame.Rect(self.margin, h - self.margin - height, w - 2 * self.margin, height)

    def _bottom(self, surface, language: str, left: list[str] = (), right: list[str] = (), **options) -> int:
        """Buttons along the bottom edge: ``left`` from the left, ``right`` from the right; returns their top."""
        rect = self.bottom_rect()
        width = max(self.target * 2, min(rect.width // 3 - self.gap, round(52 * self.px_per_mm)))
        for index, event in enumerate(left):
            self.button(surface, event, pygame.Rect(rect.left + index * (width + self.gap), rect.top, width,
                                                    rect.height), language, **options.get(event, {}))
        for index, event in enumerate(right):
            self.button(surface, event, pygame.Rect(rect.right - (index + 1) * width - index * self.gap, rect.top,
                                                    width, rect.height), language, **options.get(event, {}))
        return rect.top

    # ------------------------------------------------------------------ common parts

    def _texts_for(self, view: ScreenView) -> tuple[str, str]:
        if view.card_kind in PHONE_KINDS and view.state in PHONE_STATE_TEXT:
            return PHONE_STATE_TEXT[view.state]
        if view.state == "face" and view.face_step in FACE_STEP_TEXT:
            return FACE_STEP_TEXT[view.face_step]
        return STATE_TEXT.get(view.state, (view.state, ""))

    def header(self, surface, view: ScreenView, title: str, x0: int | None = None, x1: int | None = None,
               top: int | None = None) -> int:
        """The title (primary large, secondary below); returns its bottom."""
        x0 = self.margin if x0 is None else x0
        x1 = self.size[0] - self.margin if x1 is None else x1
        y = round(self.size[1] * 0.045) + 10 if top is None else top
        primary, secondary = bilingual(title, view.language)
        rect = pygame.Rect(x0, y, x1 - x0, round(self.size[1] * 0.24))
        return self.paragraph(surface, [(primary, self.sizes["title"], INK), (secondary, self.sizes["title2"], MUTED)],
                              rect, role="title")

    def notice_text(self, view: ScreenView) -> str:
        return notice_text(view.notice)

    def _notice(self, surface, view: ScreenView, rect: pygame.Rect, colour=WARN, **options) -> int:
        message = self.notice_text(view)
        if not message:
            return rect.top
        days = view.days_left if view.days_left is not None else ""
        if "{days}" in message and view.days_left is None:
            message = NOTICE_TEXT["cert_expiring_soon"]
        return self.bilingual_paragraph(surface, message, view.language, rect, colour, role="notice", days=days,
                                        **options)

    def progress(self, surface, rect: pygame.Rect, t_s: float, colour=BLUE) -> None:
        """An indeterminate progress bar: a block sliding along a track (phase from ``t_s``)."""
        pygame.draw.rect(surface, (222, 226, 232), rect, border_radius=rect.height // 2)
        phase = (t_s % 1.6) / 1.6
        block = rect.width // 4
        x = rect.left + round((rect.width + block) * phase) - block
        moving = pygame.Rect(x, rect.top, block, rect.height).clip(rect)
        if moving.width:
            pygame.draw.rect(surface, colour, moving, border_radius=rect.height // 2)
        self.regions["progress"] = rect

    def _progress_bar(self, surface, y: int, view: ScreenView) -> int:
        w = self.size[0]
        rect = pygame.Rect(w // 5, y, w * 3 // 5, max(8, round(2.2 * self.px_per_mm)))
        self.progress(surface, rect, view.t_s, ACCENT.get(view.state, BLUE))
        return rect.bottom

    # ------------------------------------------------------------------ render

    def render(self, surface: pygame.Surface, view: ScreenView) -> list[Button]:
        """Draw ``view``; returns the buttons drawn (for :meth:`hit`)."""
        self.buttons, self.drawn, self.regions, self._preview_map = [], [], {}, None
        if view.state == "idle" and self._last_state != "idle":
            self._measured.clear()  # the visit is over: keep none of its strings (tries and days left)
        self._last_state = view.state
        surface.fill(BACKGROUND)
        accent = ACCENT.get(view.state, BLUE)
        pygame.draw.rect(surface, accent, pygame.Rect(0, 0, self.size[0], max(10, round(self.size[1] * 0.028))))
        draw = getattr(self, f"_draw_{view.state}", self._draw_generic)
        draw(surface, view)
        return self.buttons

    def hit(self, position: tuple[int, int]) -> tuple[str, dict] | None:
        """``(event, data)`` of the button under ``position`` (pixels), if any."""
        for button in self.buttons:
            if button.rect.collidepoint(position):
                return button.event, dict(button.data)
        return None

    # ------------------------------------------------------------------ states

    def _title_and_hint(self, surface, view: ScreenView, bottom: int, *, hint_colour=INK) -> int:
        title, hint = self._texts_for(view)
        y = self.header(surface, view, title)
        if hint:
            area = pygame.Rect(self.margin, y + self.gap, self.size[0] - 2 * self.margin,
                               max(0, bottom - y - 2 * self.gap))
            y = self.bilingual_paragraph(surface, hint, view.language, area, hint_colour)
        return y

    def _draw_generic(self, surface, view: ScreenView) -> None:
        top = self._bottom(surface, view.language, left=["cancel"])
        self._title_and_hint(surface, view, top)

    def _draw_idle(self, surface, view: ScreenView) -> None:
        rect = self.bottom_rect()
        self.row(surface, [("phone_help", {}), ("call_staff", {}), ("language", {})], rect, view.language)
        bottom = rect.top - self.gap
        if view.problems:  # for staff passing by: technical English, small, out of the patient's way
            self.text(surface, view.problems[0][:80], self.sizes["small"], MUTED, role="staff",
                      bottomleft=(self.margin, bottom))
            bottom -= self.sizes["small"] + self.gap
        y = self._title_and_hint(surface, view, bottom)
        self._draw_card_on_reader(surface, pygame.Rect(0, y + self.gap, self.size[0], bottom - y - 2 * self.gap))

    def _draw_card_on_reader(self, surface, area: pygame.Rect) -> None:
        if area.height < 40:
            return
        reader = pygame.Rect(0, 0, min(area.width // 3, area.height * 2), max(16, area.height // 4))
        reader.midbottom = (area.centerx, area.bottom)
        pygame.draw.rect(surface, (70, 76, 88), reader, border_radius=8)
        card = pygame.Rect(0, 0, reader.width * 2 // 3, max(10, area.height // 2))
        card.midbottom = (reader.centerx, reader.top + 4)
        pygame.draw.rect(surface, (235, 200, 210), card, border_radius=8)
        pygame.draw.rect(surface, MUTED, card, width=2, border_radius=8)
        chip = pygame.Rect(card.left + card.width // 8, card.top + card.height // 3, card.width // 6, card.height // 3)
        pygame.draw.rect(surface, (200, 170, 60), chip, border_radius=3)

    def _draw_phone_help(self, surface, view: ScreenView) -> None:
        self._draw_phone_help_like(surface, view, left=["back"])

    def draw_phone_animation(self, surface, area: pygame.Rect, t_s: float) -> None:
        """A phone coming down and lying flat on the reader, resting (waves), lifting: a cycle every 3 s."""
        phase = (t_s % 3.0) / 3.0
        reader = pygame.Rect(0, 0, area.width * 3 // 4, max(16, area.height // 6))
        reader.midbottom = (area.centerx, area.bottom)
        pygame.draw.rect(surface, (70, 76, 88), reader, border_radius=10)
        mark = pygame.Rect(0, 0, reader.height, reader.height // 2)
        mark.center = reader.center
        pygame.draw.ellipse(surface, (150, 200, 255), mark, width=3)
        phone_w = max(20, area.width // 4)
        phone_h = max(30, min(phone_w * 2, area.height // 2))
        slab = max(8, phone_h // 6)  # a phone lying flat, seen from the side
        if phase < 0.4:
            down = 1 - (1 - phase / 0.4) ** 2
        elif phase < 0.85:
            down = 1.0
        else:
            down = 1 - (phase - 0.85) / 0.15
        height = round(phone_h + (slab - phone_h) * down)  # it turns flat as it comes down
        bottom = round(area.top + phone_h + 4 + (reader.top - 2 - area.top - phone_h - 4) * down)
        phone = pygame.Rect(0, 0, phone_w if down < 1 else round(phone_w * 1.3), height)
        phone.midbottom = (area.centerx, bottom)
        pygame.draw.rect(surface, (40, 44, 52), phone, border_radius=8)
        screen = phone.inflate(-8, -8)
        if screen.height > 4:
            pygame.draw.rect(surface, (120, 170, 230), screen, border_radius=5)
        if down >= 1:  # the reader talks to the phone: waves above it
            grow = (phase - 0.4) / 0.45
            for ring in range(3):
                radius = round(phone.width * (0.35 + 0.18 * ring + 0.1 * grow))
                arc = pygame.Rect(0, 0, radius * 2, radius * 2)
                arc.center = phone.center
                if arc.top >= area.top:
                    pygame.draw.arc(surface, BLUE, arc, math.pi / 4, 3 * math.pi / 4, 3)
        else:  # an arrow: down towards the reader
            x = min(area.right - 14, phone.right + area.width // 8)
            y0, y1 = area.top + area.height // 6, reader.top - area.height // 8
            pygame.draw.line(surface, BLUE, (x, y0), (x, y1), 5)
            pygame.draw.polygon(surface, BLUE, [(x - 12, y1 - 14), (x + 12, y1 - 14), (x, y1 + 4)])

    def _draw_reading(self, surface, view: ScreenView) -> None:
        top = self._bottom(surface, view.language, left=["cancel"])
        y = self._title_and_hint(surface, view, top - 6 * self.gap)
        self._progress_bar(surface, min(top - 3 * self.gap, y + 3 * self.gap), view)

    _draw_pin_checking = _draw_reading
    _draw_checking = _draw_reading
    _draw_visual = _draw_reading
    _draw_registering = _draw_reading

    def _draw_phone_hold(self, surface, view: ScreenView) -> None:
        self._draw_phone_help_like(surface, view, left=["cancel"])

    def _draw_phone_help_like(self, surface, view: ScreenView, left: list[str]) -> None:
        top = self._bottom(surface, view.language, left=left)
        w = self.size[0]
        split = w * 11 // 20
        title, hint = self._texts_for(view)
        y = self.header(surface, view, title, x1=split)
        self.bilingual_paragraph(surface, hint, view.language,
                                 pygame.Rect(self.margin, y + self.gap, split - self.margin, top - y - 2 * self.gap))
        area = pygame.Rect(split, round(self.size[1] * 0.06), w - split - self.margin, top - round(self.size[1] * 0.08))
        self.regions["animation"] = area
        self.draw_phone_animation(surface, area, view.t_s)

    def _draw_cert_notice(self, surface, view: ScreenView) -> None:
        top = self._bottom(surface, view.language, right=["notice_ok"],
                           notice_ok={"fill": PRIMARY_FILL})
        y = self.header(surface, view, self._texts_for(view)[0])
        if not self.notice_text(view):  # the flow did not name one: say what the status means
            key = {"grace": "cert_grace", "expiring": "cert_expiring"}.get(view.cert_status, "")
            view = replace(view, notice=key)
        self._notice(surface, view, pygame.Rect(self.margin, y + 2 * self.gap, self.size[0] - 2 * self.margin,
                                                top - y - 4 * self.gap), INK, big="body")

    def _draw_unusable(self, surface, view: ScreenView) -> None:
        top = self._bottom(surface, view.language, left=["cancel"], right=["call_staff"])
        if view.notice == "phone_expired" and view.card_kind not in PHONE_KINDS:
            view = replace(view, card_kind="android")  # the phone has left: its kind is all that matters
        self._title_and_hint(surface, view, top - self.gap)

    def _draw_choose_method(self, surface, view: ScreenView) -> None:
        w = self.size[0]
        proxy_caption = bilingual(PROXY_ON if view.proxy else PROXY_OFF, view.language)[0]
        top = self._bottom(surface, view.language, left=["cancel", "call_staff"], right=["proxy"],
                           proxy={"caption": proxy_caption, "data": {"on": not view.proxy},
                                  "fill": ON_FILL if view.proxy else BUTTON_FILL})
        methods = [m for m in view.methods if m in ("face", "pin", "visual")] or ["visual"]
        height = min(round(self.target * 1.35), max(self.target, (top - self.gap) // 3))
        row = pygame.Rect(self.margin, top - self.gap - height, w - 2 * self.margin, height)
        if len(methods) < 3:
            width = (row.width - 2 * self.gap) // 3 * len(methods) + self.gap * (len(methods) - 1)
            row = pygame.Rect(0, row.top, width, row.height)
            row.centerx = w // 2
        items = []
        for method in methods:
            options: dict = {"fill": PRIMARY_FILL}
            if method == "face" and view.face_tries_left is not None:
                options["caption"] = bilingual(FACE_TRIES_LEFT, view.language)[0].format(tries=view.face_tries_left)
            if method == "pin" and view.pin_tries_left is not None:
                options["caption"] = bilingual(PIN_TRIES_LEFT, view.language)[0].format(tries=view.pin_tries_left)
            items.append((f"choose_{method}", options))
        self.row(surface, items, row, view.language)
        y = self.header(surface, view, self._texts_for(view)[0])
        self._notice(surface, view, pygame.Rect(self.margin, y + self.gap, w - 2 * self.margin,
                                                row.top - y - 2 * self.gap), valign="middle")

    def _draw_face(self, surface, view: ScreenView) -> None:
        if view.face_step != "capture":
            top = self._bottom(surface, view.language, left=["cancel"])
            y = self._title_and_hint(surface, view, top - 10 * self.gap)
            y = self._face_steps(surface, view, pygame.Rect(self.margin, y + 2 * self.gap,
                                                            self.size[0] - 2 * self.margin, 4 * self.gap))
            self._progress_bar(surface, min(top - 3 * self.gap, y + 2 * self.gap), view)
            return
        w, h = self.size
        split = w * 9 // 16
        cancel = pygame.Rect(0, 0, w - split - self.margin * 2, self.target)
        cancel.bottomright = (w - self.margin, h - self.margin)
        self.button(surface, "cancel", cancel, view.language)
        area = pygame.Rect(self.margin, round(h * 0.05), split - self.margin, h - round(h * 0.05) - self.margin)
        self.draw_preview(surface, view, area)
        x0 = split + self.margin
        y = self.header(surface, view, FACE_STEP_TEXT["capture"][0], x0=x0)
        prompt = FACE_PROMPT_TEXT.get(view.face_prompt, "")
        bottom = cancel.top - self.gap
        if view.face_tries_left is not None:
            line = bilingual(FACE_TRIES_LEFT, view.language)[0].format(tries=view.face_tries_left)
            self.text(surface, line, self.sizes["body2"], MUTED, max_width=w - x0 - self.margin,
                      bottomleft=(x0, bottom))
            bottom -= self.sizes["body2"] + self.gap
        if prompt:
            self.bilingual_paragraph(surface, prompt, view.language,
                                     pygame.Rect(x0, y + 2 * self.gap, w - x0 - self.margin, bottom - y - 3 * self.gap),
                                     BLUE, role="notice", big="title", valign="middle")

    def _face_steps(self, surface, view: ScreenView, rect: pygame.Rect) -> int:
        """The four face steps as a line of dots, the current one filled."""
        current = FACE_STEPS.index(view.face_step) if view.face_step in FACE_STEPS else -1
        cell = rect.width // len(FACE_STEPS)
        radius = max(6, round(1.6 * self.px_per_mm))
        bottom = rect.top
        for index, step in enumerate(FACE_STEPS):
            centre = (rect.left + cell * index + cell // 2, rect.top + radius)
            colour = BLUE if index <= current else (200, 204, 212)
            pygame.draw.circle(surface, colour, centre, radius, width=0 if index <= current else 3)
            label = bilingual(FACE_STEP_LABELS[step], view.language)[0]
            drawn = self.text(surface, label, self.sizes["body2"], INK if index == current else MUTED,
                              max_width=cell - self.gap, midtop=(centre[0], centre[1] + radius + 4))
            bottom = max(bottom, drawn.bottom)
        return bottom

    def draw_preview(self, surface, view: ScreenView, area: pygame.Rect) -> None:
        """Blit the camera preview (scaled to fit ``area``, mirrored if so set) and the face box on it."""
        pygame.draw.rect(surface, (30, 32, 38), area, border_radius=8)
        preview = view.preview
        if not isinstance(preview, np.ndarray) or preview.ndim not in (2, 3) or min(preview.shape[:2]) < 2:
            self.regions["preview"] = area.copy()
            return
        rgb = preview if preview.ndim == 3 else np.repeat(preview[:, :, None], 3, axis=2)
        rgb = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)
        src_h, src_w = rgb.shape[:2]
        scale = min(area.width / src_w, area.height / src_h)
        rect = pygame.Rect(0, 0, max(1, round(src_w * scale)), max(1, round(src_h * scale)))
        rect.center = area.center
        image = pygame.surfarray.make_surface(rgb.swapaxes(0, 1))  # a copy: the frame is not kept
        image = pygame.transform.scale(image, rect.size)
        if self.mirror_preview:
            image = pygame.transform.flip(image, True, False)
        surface.blit(image, rect)
        del image
        self.regions["preview"] = rect
        self._preview_map = (rect, scale, src_w, self.mirror_preview)
        if view.face_box is not None:
            x, y, width, height = view.face_box
            x0, y0 = self.preview_point(x, y)
            x1, y1 = self.preview_point(x + width, y + height)
            box = pygame.Rect(min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)).clip(rect)
            if box.width and box.height:
                pygame.draw.rect(surface, (60, 220, 90), box, width=3)
                self.regions["face_box"] = box

    def preview_point(self, x: float, y: float) -> tuple[int, int]:
        """Where a point of the preview (its pixels) was drawn on the screen in the last render."""
        if self._preview_map is None:
            raise ValueError("no preview was drawn")
        rect, scale, src_w, mirrored = self._preview_map
        sx = (src_w - x) if mirrored else x
        return rect.left + round(sx * scale), rect.top + round(y * scale)

    def _draw_keypad_screen(self, surface, view: ScreenView) -> None:
        w, h = self.size
        split = w // 2
        key_h = min(round(self.target * 1.3), (h - 2 * self.margin - 3 * self.gap) // 4)
        key_w = min(round(self.target * 1.6), (w - split - self.margin - 2 * self.gap) // 3)
        pad = pygame.Rect(0, 0, key_w * 3 + 2 * self.gap, key_h * 4 + 3 * self.gap)
        pad.midright = (w - self.margin, h // 2 + round(h * 0.01))
        keys = tuple(view.pin_keys)
        if sorted(keys) != list(UNSHUFFLED) or keys == UNSHUFFLED:
            keys = DEFAULT_PIN_KEYS
        slots = [(r, c) for r in range(3) for c in range(3)] + [(3, 1)]
        for digit, (r, c) in zip(keys, slots, strict=True):
            cell = pygame.Rect(pad.left + c * (key_w + self.gap), pad.top + r * (key_h + self.gap), key_w, key_h)
            self._key(surface, cell, str(digit), "pin_digit", {"digit": int(digit)})
        delete = pygame.Rect(pad.left, pad.top + 3 * (key_h + self.gap), key_w, key_h)
        submit = pygame.Rect(pad.left + 2 * (key_w + self.gap), delete.top, key_w, key_h)
        self.button(surface, "pin_delete", delete, view.language)
        ready = view.pin_length >= view.pin_capacity
        self.button(surface, "pin_submit", submit, view.language, fill=PRIMARY_FILL if ready else BUTTON_FILL)

        left = pad.left - self.gap - self.margin
        cancel = pygame.Rect(self.margin, h - self.margin - self.target, min(left, round(self.target * 2.4)),
                             self.target)
        self.button(surface, "cancel", cancel, view.language)
        title, hint = self._texts_for(view)
        y = self.header(surface, view, title, x1=self.margin + left)
        y = self.bilingual_paragraph(surface, hint, view.language,
                                     pygame.Rect(self.margin, y, left, round(h * 0.13)), MUTED, big="body",
                                     centre=False) if hint else y
        field_rect = pygame.Rect(self.margin, y + self.gap, left, round(self.sizes["pin"] * 1.6))
        self.pin_field(surface, field_rect, view.pin_length, view.pin_capacity)
        y = field_rect.bottom + self.gap
        lines: list[tuple[str, int, tuple]] = []
        notice = self.notice_text(view)
        if notice:
            primary, secondary = bilingual(notice, view.language)
            lines += [(primary, self.sizes["body"], WARN), (secondary, self.sizes["body2"], MUTED)]
        if view.pin_tries_left is not None:
            primary, secondary = bilingual(PIN_TRIES_LEFT, view.language)
            lines.append((primary.format(tries=view.pin_tries_left), self.sizes["body"],
                          WARN if view.pin_tries_left <= 1 else INK))
            if view.pin_tries_left == 1:
                lines.append((bilingual(PIN_LAST_TRY, view.language)[0], self.sizes["body2"], WARN))
        self.paragraph(surface, lines, pygame.Rect(self.margin, y, left, cancel.top - y - self.gap), centre=False)

    _draw_pin = _draw_keypad_screen
    _draw_phone_pin = _draw_keypad_screen

    def _key(self, surface, rect: pygame.Rect, label: str, event: str, data: dict) -> None:
        pygame.draw.rect(surface, BUTTON_FILL, rect, border_radius=12)
        pygame.draw.rect(surface, MUTED, rect, width=2, border_radius=12)
        self.text(surface, label, self.sizes["key"], INK, role="key", max_width=rect.width - 8, center=rect.center)
        self.buttons.append(Button(event, rect, dict(data)))

    def pin_field(self, surface, rect: pygame.Rect, length: int, capacity: int) -> None:
        """One slot per digit: a typed one shows "●" (the only text this field ever gets), an empty one a ring."""
        self.regions["pin_field"] = rect
        capacity = max(1, capacity)
        length = max(0, min(length, capacity))
        slot = min(rect.height, (rect.width - self.gap * (capacity - 1)) // capacity)
        x = rect.left
        for index in range(capacity):
            cell = pygame.Rect(x, rect.top, slot, slot)
            pygame.draw.rect(surface, (255, 255, 255), cell, border_radius=8)
            pygame.draw.rect(surface, MUTED, cell, width=2, border_radius=8)
            if index < length:
                self.text(surface, PIN_MASK, min(self.sizes["pin"], slot * 2 // 3), INK, role="pin",
                          max_width=slot, center=cell.center)
            x += slot + self.gap

    def _draw_register(self, surface, view: ScreenView) -> None:
        refused = NOTICE_ALIASES.get(view.notice, view.notice) in ("registration_refused", "registration_failed")
        if refused:
            top = self._bottom(surface, view.language, right=["notice_ok"], notice_ok={"fill": PRIMARY_FILL})
        else:
            top = self._bottom(surface, view.language, left=["cancel"])
            height = round(self.target * 1.25)
            row = pygame.Rect(0, top - self.gap - height, min(self.size[0] - 2 * self.margin,
                                                               round(self.target * 6)), height)
            row.centerx = self.size[0] // 2
            self.row(surface, [("register_yes", {"fill": PRIMARY_FILL}), ("register_no", {})], row, view.language)
            top = row.top
        y = self._title_and_hint(surface, view, top - self.gap)
        self._notice(surface, view, pygame.Rect(self.margin, y + self.gap, self.size[0] - 2 * self.margin,
                                                top - y - 2 * self.gap), INK if refused else WARN)

    def _draw_consent(self, surface, view: ScreenView) -> None:
        top = self._bottom(surface, view.language, left=["cancel"])
        w = self.size[0]
        choices = ["consent_all", "consent_choose"]
        if view.previous_consent_available:
            choices.append("consent_same")
        choices.append("consent_none")
        height = min(round(self.target * 1.3), max(self.target, (top - self.gap) // 3))
        row = pygame.Rect(self.margin, top - self.gap - height, w - 2 * self.margin, height)
        self.row(surface, [(c, {"fill": PRIMARY_FILL if c == "consent_all" else BUTTON_FILL}) for c in choices], row,
                 view.language)
        title, hint = self._texts_for(view)
        y = self.header(surface, view, title)
        self.bilingual_paragraph(surface, hint, view.language,
                                 pygame.Rect(self.margin, y + self.gap, w - 2 * self.margin, row.top - y - 2 * self.gap))

    def _draw_consent_items(self, surface, view: ScreenView) -> None:
        w, h = self.size
        top = self._bottom(surface, view.language, left=["cancel"], right=["consent_done"],
                           consent_done={"fill": PRIMARY_FILL})
        title, hint = self._texts_for(view)
        primary, secondary = bilingual(title, view.language)
        y = self.paragraph(surface, [(f"{primary}", self.sizes["title"], INK),
                                     (secondary, self.sizes["title2"], MUTED)],
                           pygame.Rect(self.margin, round(h * 0.04) + 6, w - 2 * self.margin, round(h * 0.17)),
                           role="title")
        items = view.consent_items
        if not items:
            return
        grid = pygame.Rect(self.margin, y + self.gap, w - 2 * self.margin, top - y - 2 * self.gap)
        rows_max = max(1, (grid.height + self.gap) // (self.target + self.gap))
        columns = max(1, math.ceil(len(items) / rows_max))
        rows = math.ceil(len(items) / columns)
        cell_w = (grid.width - self.gap * (columns - 1)) // columns
        cell_h = min(round(self.target * 1.4), (grid.height - self.gap * (rows - 1)) // rows)
        for index, (key, label, agreed) in enumerate(items):
            r, c = divmod(index, columns)
            cell = pygame.Rect(grid.left + c * (cell_w + self.gap), grid.top + r * (cell_h + self.gap), cell_w, cell_h)
            status = bilingual(CONSENT_ON if agreed else CONSENT_OFF, view.language)[0]
            self.button(surface, "consent_toggle", cell, view.language, label=label, data={"item": key},
                        fill=ON_FILL if agreed else BUTTON_FILL, caption=status)
            if agreed:  # a second cue besides the colour: a thick green frame
                pygame.draw.rect(surface, ON_INK, cell, width=4, border_radius=12)

    def _draw_prescription(self, surface, view: ScreenView) -> None:
        top = self._bottom(surface, view.language, left=["cancel"])
        height = min(round(self.target * 1.4), max(self.target, (top - self.gap) // 3))
        row = pygame.Rect(0, top - self.gap - height, min(self.size[0] - 2 * self.margin, round(self.target * 7)),
                          height)
        row.centerx = self.size[0] // 2
        self.row(surface, [("prescription_electronic", {"fill": ON_FILL if view.prescription == "electronic"
                                                        else PRIMARY_FILL}),
                           ("prescription_paper", {"fill": ON_FILL if view.prescription == "paper" else BUTTON_FILL})],
                 row, view.language)
        self._title_and_hint(surface, view, row.top - self.gap)

    def _draw_done(self, surface, view: ScreenView) -> None:
        w, h = self.size
        bottom = self._bottom(surface, view.language, right=["call_staff"])
        y = self._title_and_hint(surface, view, round(h * 0.4))
        label = bilingual(ANSWER_LABEL, view.language)
        answer = bilingual(ANSWER_TEXT.get(view.answer, ANSWER_TEXT["invalid"]), view.language)
        colour = ACCENT["done"] if view.answer == "valid" else (INK if view.answer is None else WARN)
        y = self.paragraph(surface, [(f"{label[0]}: {answer[0]}", self.sizes["title"], colour),
                                     (f"{label[1]}: {answer[1]}", self.sizes["title2"], MUTED)],
                           pygame.Rect(self.margin, y + 2 * self.gap, w - 2 * self.margin, round(h * 0.2)))
        if not view.terminal_online:
            view = replace(view, notice="terminal_offline")
        if view.notice:
            self._notice(surface, view, pygame.Rect(self.margin, y + self.gap, w - 2 * self.margin,
                                                    bottom - y - 2 * self.gap))

    def _draw_removed(self, surface, view: ScreenView) -> None:
        self._title_and_hint(surface, view, self.size[1] - self.margin)

    def _draw_more_time(self, surface, view: ScreenView) -> None:
        height = round(self.target * 1.3)
        row = pygame.Rect(0, 0, min(self.size[0] - 2 * self.margin, round(self.target * 6)), height)
        row.midbottom = (self.size[0] // 2, self.size[1] - self.margin)
        self.row(surface, [("more_time_yes", {"fill": PRIMARY_FILL}), ("more_time_no", {})], row, view.language)
        y = self.header(surface, view, self._texts_for(view)[0])
        self.bilingual_paragraph(surface, MORE_TIME_FOR, view.language,
                                 pygame.Rect(self.margin, y + 2 * self.gap, self.size[0] - 2 * self.margin,
                                             row.top - y - 3 * self.gap))

    def _draw_failed(self, surface, view: ScreenView) -> None:
        top = self._bottom(surface, view.language, left=["cancel"], right=["call_staff"])
        y = self._title_and_hint(surface, view, round(self.size[1] * 0.5))
        reason = error_text(view.error_lineage or (view.error_kind,))
        self.bilingual_paragraph(surface, reason, view.language,
                                 pygame.Rect(self.margin, y + 2 * self.gap, self.size[0] - 2 * self.margin,
                                             top - y - 3 * self.gap), ACCENT["failed"])

    def _draw_out_of_service(self, surface, view: ScreenView) -> None:
        h = self.size[1]
        y = self._title_and_hint(surface, view, round(h * 0.55))
        for problem in view.problems[:4]:
            rect = self.text(surface, problem[:100], self.sizes["small"] + 2, MUTED, role="staff",
                             midtop=(self.size[0] // 2, y + self.gap))
            y = rect.bottom
