"""Screens: render a :class:`ScreenView` onto an 800×480 surface and turn touches into events.

A screen never reaches into the flow or a device: it is handed a view (what to show) and returns
the buttons it drew, so a touch becomes an event name (``cancel``, ``language``) for the kiosk to
send to the flow. Japanese is primary, English is beside it in smaller type.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame
import pygame.freetype

from ui.fonts import japanese_font_path
from ui.i18n import bilingual
from ui.messages import BUTTONS, STATE_TEXT, error_text

SIZE = (800, 480)
BACKGROUND = (250, 250, 247)
INK = (20, 24, 32)
MUTED = (90, 96, 110)
ACCENT = {"idle": (0, 94, 184), "reading": (0, 94, 184), "done": (0, 140, 70), "failed": (190, 30, 45),
          "out_of_service": (120, 120, 120)}


@dataclass(frozen=True)
class ScreenView:
    """Everything a screen may show: derived from the flow state and session, nothing personal."""

    state: str
    token: tuple | None = None  # the flow's (session, entry) when this view was taken
    language: str = "ja"
    error_kind: str = ""
    error_lineage: tuple[str, ...] = ()
    card_kind: str = ""
    cert_status: str = ""
    problems: tuple[str, ...] = ()  # device problems, for staff (technical English, small type)


@dataclass(frozen=True)
class Button:
    event: str
    rect: pygame.Rect


class ScreenRenderer:
    def __init__(self):
        if not pygame.freetype.get_init():
            pygame.freetype.init()
        path = str(japanese_font_path())
        self.title_font = pygame.freetype.Font(path, 40)
        self.body_font = pygame.freetype.Font(path, 26)
        self.small_font = pygame.freetype.Font(path, 18)
        self.buttons: list[Button] = []

    def _centre(self, surface, font, text: str, y: int, colour, margin: int = 24) -> None:
        """Draw ``text`` centred at ``y``, at a smaller size if it would not fit between the margins."""
        size = font.size
        rect = font.get_rect(text)
        width = SIZE[0] - 2 * margin
        if rect.width > width:
            size = max(10, int(font.size * width / rect.width))
            rect = font.get_rect(text, size=size)
        rect.midtop = (SIZE[0] // 2, y)
        font.render_to(surface, rect, text, colour, size=size)

    def _button(self, surface, event: str, rect: pygame.Rect, language: str) -> None:
        primary, secondary = bilingual(BUTTONS[event], language)
        pygame.draw.rect(surface, (225, 228, 235), rect, border_radius=12)
        pygame.draw.rect(surface, MUTED, rect, width=2, border_radius=12)
        label = self.body_font.get_rect(primary)
        label.center = (rect.centerx, rect.centery - 8)
        self.body_font.render_to(surface, label, primary, INK)
        sub = self.small_font.get_rect(secondary)
        sub.center = (rect.centerx, rect.centery + 18)
        self.small_font.render_to(surface, sub, secondary, MUTED)
        self.buttons.append(Button(event, rect))

    def render(self, surface: pygame.Surface, view: ScreenView) -> list[Button]:
        """Draw ``view``; returns the buttons drawn (for :meth:`hit`)."""
        self.buttons = []
        surface.fill(BACKGROUND)
        accent = ACCENT.get(view.state, MUTED)
        pygame.draw.rect(surface, accent, pygame.Rect(0, 0, SIZE[0], 14))
        title, hint = STATE_TEXT.get(view.state, (view.state, ""))
        title_ja, title_en = bilingual(title, view.language)
        self._centre(surface, self.title_font, title_ja, 90, INK)
        self._centre(surface, self.body_font, title_en, 146, MUTED)
        if hint:
            hint_ja, hint_en = bilingual(hint, view.language)
            self._centre(surface, self.body_font, hint_ja, 220, INK)
            self._centre(surface, self.small_font, hint_en, 258, MUTED)
        if view.state == "failed":
            reason_ja, reason_en = bilingual(error_text(view.error_lineage or (view.error_kind,)), view.language)
            self._centre(surface, self.body_font, reason_ja, 300, accent)
            self._centre(surface, self.small_font, reason_en, 338, MUTED)
        if view.state == "out_of_service":
            for index, problem in enumerate(view.problems[:3]):
                self._centre(surface, self.small_font, problem[:90], 300 + 28 * index, MUTED)
            return self.buttons
        if view.state == "idle":
            if view.problems:  # for staff passing by: technical English, small, out of the patient's way
                line = self.small_font.get_rect(view.problems[0][:60])
                line.bottomleft = (24, SIZE[1] - 24)
                self.small_font.render_to(surface, line, view.problems[0][:60], MUTED)
            self._button(surface, "language", pygame.Rect(SIZE[0] - 230, SIZE[1] - 100, 200, 76), view.language)
        else:
            self._button(surface, "cancel", pygame.Rect(30, SIZE[1] - 100, 200, 76), view.language)
        return self.buttons

    def hit(self, position: tuple[int, int]) -> str | None:
        """The event of the button under ``position`` (pixels), if any."""
        for button in self.buttons:
            if button.rect.collidepoint(position):
                return button.event
        return None
