"""ScreenRenderer memoises text measurements: same pixels as without, bounded, emptied at idle."""

from __future__ import annotations

import pygame
import pytest

from ui.screens import MEASURE_CACHE_MAX, ScreenRenderer

from .test_screens import ALL_VIEWS, SIZES
from .views import representative


@pytest.fixture(scope="module", autouse=True)
def display():
    pygame.display.init()
    yield
    pygame.display.quit()


def pixels(renderer: ScreenRenderer, view) -> tuple[bytes, list]:
    surface = pygame.Surface(renderer.size)
    renderer.render(surface, view)
    return pygame.image.tobytes(surface, "RGB"), [(d.text, tuple(d.rect), d.role) for d in renderer.drawn]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_screen_is_pixel_identical_with_and_without_the_cache(size):
    cached, uncached = ScreenRenderer(size), ScreenRenderer(size, measure_cache=0)
    views = [p.values[0] for p in ALL_VIEWS] + [representative("face", "en"), representative("pin", "en")]
    for view in views:
        first = pixels(cached, view)  # fills the cache
        assert pixels(cached, view) == first  # drawn from the cache
        assert pixels(uncached, view) == first
    assert cached._measured and not uncached._measured


def test_the_cache_stays_bounded():
    renderer = ScreenRenderer(measure_cache=40)
    for i in range(200):  # a staff problem that changes every frame
        pixels(renderer, representative("idle", problems=(f"camera: frame {i} lost, retrying",)))
        assert len(renderer._measured) <= 40
    assert 0 < MEASURE_CACHE_MAX <= 1024


def test_the_visits_strings_are_forgotten_back_at_idle():
    idle_only = ScreenRenderer()
    pixels(idle_only, representative("idle"))
    renderer = ScreenRenderer()
    pixels(renderer, representative("idle"))
    for state in ("choose_method", "pin", "cert_notice"):
        pixels(renderer, representative(state))
    assert set(renderer._measured) > set(idle_only._measured)  # the visit's screens were measured
    pixels(renderer, representative("idle"))
    assert set(renderer._measured) == set(idle_only._measured)
