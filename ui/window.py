"""The kiosk's pygame window (or a headless surface): render the flow, turn touches into events.

On a Pi it runs fullscreen through SDL's ``kmsdrm`` driver; on a desktop in a window; in tests and
headless demos with ``SDL_VIDEODRIVER=dummy``, saving screenshots on request. With a simulated
reader, the keys C (tap the demo card) and R (remove it) stand in for a patient.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pygame

from firmware.app import Kiosk
from ui.i18n import available_languages
from ui.screens import SIZE, ScreenRenderer, ScreenView

log = logging.getLogger(__name__)


def view_of(kiosk: Kiosk) -> ScreenView:
    """What the screen shows now, derived from the flow (no personal data crosses this line).

    Read from the UI thread without stopping the flow: each field is one attribute read, and the
    token tells the flow thread which state entry a touch on this screen was meant for.
    """
    flow = kiosk.flow
    session = flow.session
    card = session.card
    return ScreenView(
        state=flow.state_id, token=flow.token, language=flow.language, error_kind=session.error_kind,
        error_lineage=session.error_lineage,
        card_kind=card.token_kind if card else "", cert_status=card.cert_status if card else "",
        problems=tuple(kiosk.problems),
    )


class KioskWindow:
    def __init__(self, kiosk: Kiosk, fullscreen: bool = False, demo_card=None):
        self.kiosk = kiosk
        self.demo_card = demo_card
        pygame.display.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        self.surface = pygame.display.set_mode(SIZE, flags)
        pygame.display.set_caption("uketsuke 受付")
        self.renderer = ScreenRenderer()
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
                position = (int(event.x * SIZE[0]), int(event.y * SIZE[1]))
            else:
                position = event.pos
            self.touch(self.renderer.hit(position))
        elif event.type == pygame.KEYDOWN and hasattr(self.kiosk.reader, "present"):
            if event.key == pygame.K_c and self.demo_card is not None:
                self.kiosk.reader.present(self.demo_card)
            elif event.key == pygame.K_r:
                self.kiosk.reader.remove()

    def touch(self, event_name: str | None) -> None:
        """A button was pressed: screens emit events, the kiosk decides (on its flow thread)."""
        token = self.shown.token if self.shown is not None else None
        if event_name == "cancel":
            self.kiosk.post("cancel", token)
        elif event_name == "language":
            languages = available_languages()

            def next_language(flow) -> None:
                if token is not None and flow.token != token:
                    return  # the screen changed under the finger
                current = flow.language
                following = languages[(languages.index(current) + 1) % len(languages)] if current in languages else "ja"
                flow.language = flow.session.language = following

            self.kiosk.runner.call(next_language)

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
