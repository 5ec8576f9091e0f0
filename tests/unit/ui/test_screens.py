import pygame
import pygame.freetype
import pytest

from ui.fonts import japanese_font_path
from ui.i18n import available_languages, bilingual, catalogue
from ui.messages import ALL_MESSAGE_IDS, ERROR_TEXT, STATE_TEXT
from ui.screens import SIZE, ScreenRenderer, ScreenView


@pytest.fixture(scope="module")
def renderer():
    pygame.display.init()
    yield ScreenRenderer()
    pygame.display.quit()


def test_every_screen_text_is_translated():
    assert {"ja", "en"} <= set(available_languages())
    japanese = catalogue("ja")
    missing = [m for m in ALL_MESSAGE_IDS if m not in japanese]
    assert not missing


def test_font_has_every_glyph_of_the_japanese_catalogue():
    pygame.freetype.init()
    font = pygame.freetype.Font(str(japanese_font_path()), 24)
    for text in catalogue("ja").values():
        metrics = font.get_metrics(text)
        assert None not in metrics, f"missing glyph in {text!r}"


def test_bilingual_puts_japanese_first():
    assert bilingual("Check-in complete") == ("受付が完了しました", "Check-in complete")
    assert bilingual("Check-in complete", "en") == ("Check-in complete", "受付が完了しました")


def test_out_of_service_shows_the_problem_and_no_button(renderer):
    surface = pygame.Surface(SIZE)
    plain = pygame.Surface(SIZE)
    assert renderer.render(surface, ScreenView(state="out_of_service", problems=("nfc: reader gone",))) == []
    renderer.render(plain, ScreenView(state="out_of_service"))
    assert pygame.image.tobytes(surface, "RGB") != pygame.image.tobytes(plain, "RGB")


@pytest.mark.parametrize("state", sorted(set(STATE_TEXT) - {"out_of_service"}))
def test_each_state_renders_and_has_a_button(renderer, state):
    surface = pygame.Surface(SIZE)
    buttons = renderer.render(surface, ScreenView(state=state, error_kind="CardRemoved"))
    assert buttons
    # something was drawn in the title area (dark text on the light background)
    title_area = pygame.surfarray.array3d(surface)[200:600, 90:140]
    assert title_area.min() < 100
    button = buttons[0]
    assert renderer.hit(button.rect.center) == button.event
    assert renderer.hit((SIZE[0] // 2, 20)) is None


def test_error_kinds_change_the_failed_screen(renderer):
    shots = set()
    for kind in ERROR_TEXT:
        surface = pygame.Surface(SIZE)
        renderer.render(surface, ScreenView(state="failed", error_kind=kind))
        shots.add(pygame.image.tobytes(surface, "RGB"))
    assert len(shots) == len(set(ERROR_TEXT.values()))


def test_error_text_follows_the_class_hierarchy():
    from firmware.card.certificate import CertificateError
    from ui.messages import DEFAULT_ERROR, ERROR_TEXT, error_text

    lineage = tuple(cls.__name__ for cls in CertificateError.__mro__)
    assert error_text(lineage) == ERROR_TEXT["ReadError"]
    assert error_text(("SomethingElse", "Exception")) == DEFAULT_ERROR


@pytest.mark.parametrize("language", ["ja", "en"])
def test_no_title_is_clipped_at_800x480(renderer, language):
    """The out-of-service title ran off both edges in Japanese at 40 px."""
    for state in STATE_TEXT:
        surface = pygame.Surface(SIZE)
        renderer.render(surface, ScreenView(state=state, language=language, problems=("nfc: gone",)))
        pixels = pygame.surfarray.array3d(surface)
        for y in (slice(80, 140), slice(140, 180)):
            edges = pixels[:12, y], pixels[-12:, y]
            assert all((edge == edge[0, 0]).all() for edge in edges), f"{state}: text touches the edge"
