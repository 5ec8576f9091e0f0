import dataclasses
import re
import string
from pathlib import Path

import pygame
import pygame.freetype
import pytest

from tests.unit.ui.views import SHUFFLED, VARIANTS, consent_items, representative, synthetic_preview
from ui.fonts import japanese_font_path
from ui.i18n import available_languages, bilingual, catalogue, translate
from ui.messages import (
    ALL_MESSAGE_IDS,
    BUTTONS,
    CONSENT_ITEMS,
    ERROR_TEXT,
    FACE_PROMPT_TEXT,
    NOTICE_ALIASES,
    NOTICE_TEXT,
    STATE_TEXT,
    notice_text,
)
from ui.screens import DEFAULT_PIN_KEYS, MIN_TARGET_MM, PANELS, PIN_MASK, SIZE, ScreenRenderer, ScreenView

ROOT = Path(__file__).parents[3]
CONTRACT = ROOT / "docs" / "notes" / "checkin-contract.md"
POLICY = ROOT / "firmware" / "consent_policy.toml"
SIZES = sorted(PANELS)  # 800×480 (7") and 1280×800 (10.1")


def contract_states() -> list[str]:
    text = CONTRACT.read_text(encoding="utf-8")
    table = text.split("## Flow states", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)


STATES = contract_states()
FLOW_ONLY_STATES = ["registering"]  # a state of the flow the contract's table does not list


@pytest.fixture(scope="module", autouse=True)
def display():
    pygame.display.init()
    yield
    pygame.display.quit()


@pytest.fixture(scope="module")
def renderers():
    return {size: ScreenRenderer(size) for size in SIZES}


@pytest.fixture(scope="module")
def renderer(renderers):
    return renderers[SIZE]


def render(renderer: ScreenRenderer, view: ScreenView) -> pygame.Surface:
    surface = pygame.Surface(renderer.size)
    renderer.render(surface, view)
    return surface


ALL_VIEWS = [pytest.param(representative(s), id=s) for s in STATES + FLOW_ONLY_STATES] + [
    pytest.param(view, id=name) for name, view in VARIANTS.items()]


# ---------------------------------------------------------------------- text and catalogues

def test_every_state_of_the_contract_has_its_texts():
    assert len(STATES) == 22 and "consent_items" in STATES and "out_of_service" in STATES
    assert set(STATES) | set(FLOW_ONLY_STATES) == set(STATE_TEXT)


@pytest.mark.skipif(not POLICY.is_file(), reason="no consent policy file in this tree yet")
def test_the_consent_policy_labels_are_in_the_catalogues():
    import tomllib

    items = tomllib.loads(POLICY.read_text(encoding="utf-8"))["item"]
    for item in items:
        for language in ("ja", "en"):
            assert item["label"] in catalogue(language), item
    assert [i["key"] for i in items] == list(CONSENT_ITEMS)


@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_screen_text_is_translated(language):
    assert {"ja", "en"} <= set(available_languages())
    translated = catalogue(language)
    missing = [m for m in ALL_MESSAGE_IDS if m not in translated]
    assert not missing


def test_translations_keep_their_placeholders():
    for language in ("ja", "en"):
        for message in ALL_MESSAGE_IDS:
            fields = {name for _, name, _, _ in string.Formatter().parse(message) if name}
            assert fields == {name for _, name, _, _ in string.Formatter().parse(translate(message, language))
                              if name}, (language, message)


def test_font_has_every_glyph_of_the_japanese_catalogue():
    pygame.freetype.init()
    font = pygame.freetype.Font(str(japanese_font_path()), 24)
    for text in [*catalogue("ja").values(), PIN_MASK]:
        metrics = font.get_metrics(text)
        assert None not in metrics, f"missing glyph in {text!r}"


def test_bilingual_puts_japanese_first():
    assert bilingual("Check-in complete") == ("受付が完了しました", "Check-in complete")
    assert bilingual("Check-in complete", "en") == ("Check-in complete", "受付が完了しました")


def test_the_reference_consent_items_and_the_pin_lock_advice_are_in_japanese():
    labels = [catalogue("ja")[m] for m in CONSENT_ITEMS.values()]
    assert labels == ["薬剤情報", "特定健診情報", "診療情報", "手術情報", "傷病名", "感染症", "その他アレルギー",
                      "薬剤アレルギー", "検査", "処方"]
    locked = catalogue("ja")[NOTICE_TEXT["pin_locked"]]
    assert "市区町村の窓口" in locked and "暗証番号の再設定" in locked
    grace = catalogue("ja")[NOTICE_TEXT["cert_grace"]]
    assert "資格の確認のみ" in grace and "同意の確認は行いません" in grace
    assert translate(BUTTONS["consent_same"], "ja") == "前回と同じ"
    assert translate(BUTTONS["prescription_electronic"], "ja") == "電子処方箋"


# ---------------------------------------------------------------------- every state, both panels

@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", ALL_VIEWS)
@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_screen_fits_and_its_targets_are_at_least_15_mm(renderers, size, view, language):
    renderer = renderers[size]
    surface = render(renderer, dataclasses.replace(view, language=language))
    bounds = surface.get_rect()
    minimum = MIN_TARGET_MM * renderer.px_per_mm
    for button in renderer.buttons:
        assert button.rect.width >= minimum and button.rect.height >= minimum, (button.event, button.rect)
        assert bounds.contains(button.rect), (button.event, button.rect)
    rects = [b.rect for b in renderer.buttons]
    for index, rect in enumerate(rects):
        assert rect.collidelist(rects[index + 1:]) == -1, f"{renderer.buttons[index].event} overlaps another button"
    assert renderer.drawn, "nothing written"
    for drawn in renderer.drawn:
        assert bounds.contains(drawn.rect), f"{drawn.text!r} at {drawn.rect} leaves the {size} screen"
        assert drawn.rect.height >= 8, f"{drawn.text!r} is unreadably small"
    # the title is written, large, near the top
    titles = [d for d in renderer.drawn if d.role == "title"]
    assert titles and titles[0].rect.top < size[1] * 0.2
    assert titles[0].rect.height > titles[-1].rect.height or len(titles) == 1


@pytest.mark.parametrize("state", STATES + FLOW_ONLY_STATES)
def test_primary_language_is_larger_than_the_other(renderer, state):
    render(renderer, representative(state))
    title_ja, title_en = bilingual(STATE_TEXT[state][0])
    drawn = {d.text: d.rect.height for d in renderer.drawn if d.role == "title"}
    if title_ja in drawn and title_en in drawn:
        assert drawn[title_ja] > drawn[title_en]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("language", ["ja", "en"])
def test_no_text_touches_the_edge(renderers, size, language):
    """The out-of-service title ran off both edges in Japanese at 40 px."""
    renderer = renderers[size]
    edge = round(renderer.margin * 0.75)
    for state in STATES + FLOW_ONLY_STATES:
        surface = render(renderer, representative(state, language))
        pixels = pygame.surfarray.array3d(surface)
        band = slice(round(size[1] * 0.03) + 2, size[1])
        for strip in (pixels[:edge, band], pixels[-edge:, band]):
            assert (strip == strip[0, 0]).all(), f"{state}: something touches the edge"


@pytest.mark.parametrize("view", ALL_VIEWS)
def test_hit_returns_the_event_and_data_of_each_button(renderer, view):
    buttons = render(renderer, view) and renderer.buttons
    for button in buttons:
        assert renderer.hit(button.rect.center) == (button.event, button.data)
        assert renderer.hit(button.rect.topleft) == (button.event, button.data)
    assert renderer.hit((-5, -5)) is None
    assert renderer.hit((renderer.size[0] // 2, 4)) is None  # the accent bar is not a button


EXPECTED_EVENTS = {
    "idle": {"phone_help", "call_staff", "language"},
    "phone_help": {"back"},
    "reading": {"cancel"},
    "phone_pin": {"pin_digit", "pin_delete", "pin_submit", "cancel"},
    "phone_hold": {"cancel"},
    "cert_notice": {"notice_ok"},
    "unusable": {"cancel", "call_staff"},
    "choose_method": {"choose_face", "choose_pin", "choose_visual", "proxy", "cancel", "call_staff"},
    "face": {"cancel"},
    "pin": {"pin_digit", "pin_delete", "pin_submit", "cancel"},
    "pin_checking": {"cancel"},
    "visual": {"cancel"},
    "checking": {"cancel"},
    "register": {"register_yes", "register_no", "cancel"},
    "consent": {"consent_all", "consent_choose", "consent_same", "consent_none", "cancel"},
    "consent_items": {"consent_toggle", "consent_done", "cancel"},
    "prescription": {"prescription_electronic", "prescription_paper", "cancel"},
    "done": {"call_staff"},
    "removed": set(),
    "more_time": {"more_time_yes", "more_time_no"},
    "failed": {"cancel", "call_staff"},
    "out_of_service": set(),
    "registering": {"cancel"},
}


@pytest.mark.parametrize("state", STATES + FLOW_ONLY_STATES)
def test_each_state_offers_its_buttons(renderer, state):
    assert {b.event for b in renderer.render(pygame.Surface(SIZE), representative(state))} == EXPECTED_EVENTS[state]


def test_every_button_event_has_a_label_and_is_used():
    used = set().union(*EXPECTED_EVENTS.values())
    assert used - {"pin_digit", "consent_toggle"} == set(BUTTONS)


# ---------------------------------------------------------------------- PIN

def test_screen_view_cannot_carry_pin_digits():
    pin_fields = {f.name: f.type for f in dataclasses.fields(ScreenView) if "pin" in f.name}
    assert pin_fields == {"pin_length": "int", "pin_capacity": "int", "pin_tries_left": "int | None",
                          "pin_keys": "tuple[int, ...]"}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("state", ["pin", "phone_pin"])
@pytest.mark.parametrize("length", [0, 1, 4])
def test_the_pin_field_shows_only_masks(renderers, size, state, length):
    renderer = renderers[size]
    render(renderer, representative(state, pin_length=length))
    field = renderer.regions["pin_field"]
    in_field = [d for d in renderer.drawn if d.rect.colliderect(field)]
    assert [d.text for d in in_field] == [PIN_MASK] * length
    assert [d.text for d in renderer.drawn if d.role == "pin"] == [PIN_MASK] * length
    # the only single digits written are the keypad's own labels, on its keys
    keys = [b.rect for b in renderer.buttons if b.event == "pin_digit"]
    for drawn in renderer.drawn:
        if drawn.text.isdigit():
            assert drawn.role == "key" and drawn.rect.collidelist(keys) != -1


def test_the_pin_field_looks_the_same_whatever_the_key_order(renderer):
    shots = set()
    for keys in (SHUFFLED, (1, 2, 3, 4, 5, 6, 7, 8, 9, 0), (0, 9, 8, 7, 6, 5, 4, 3, 2, 1)):
        surface = render(renderer, representative("pin", pin_length=4, pin_keys=keys))
        shots.add(pygame.image.tobytes(surface.subsurface(renderer.regions["pin_field"]), "RGB"))
    assert len(shots) == 1


@pytest.mark.parametrize(("keys", "drawn"), [(SHUFFLED, SHUFFLED), (DEFAULT_PIN_KEYS, DEFAULT_PIN_KEYS),
                                             (tuple(range(10)), DEFAULT_PIN_KEYS)])
def test_keys_are_laid_out_in_the_order_given(renderer, keys, drawn):
    """Rows of three, the tenth below the middle; 0-9 in order ("not shuffled") is a phone's keypad."""
    render(renderer, representative("pin", pin_keys=keys))
    digits = [b for b in renderer.buttons if b.event == "pin_digit"]
    rows = sorted(digits, key=lambda b: (b.rect.top, b.rect.left))
    assert [b.data["digit"] for b in rows] == list(drawn)
    keys = drawn
    for button in digits:
        labels = [d.text for d in renderer.drawn if d.role == "key" and button.rect.contains(d.rect)]
        assert labels == [str(button.data["digit"])]
    assert renderer.hit(rows[0].rect.center) == ("pin_digit", {"digit": keys[0]})


def test_tries_left_and_the_wrong_pin_notice_are_shown(renderer):
    render(renderer, representative("pin", pin_tries_left=2, notice="pin_wrong"))
    texts = [d.text for d in renderer.drawn]
    assert "暗証番号が違います。" in texts and "暗証番号の残り回数：2回" in texts


# ---------------------------------------------------------------------- face

@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mirror", [True, False])
def test_the_preview_and_face_box_are_drawn_where_the_view_says(size, mirror):
    renderer = ScreenRenderer(size, mirror_preview=mirror)
    preview = synthetic_preview(160, 120)
    view = representative("face", preview=preview, face_box=(40.0, 20.0, 60.0, 80.0))  # x, y, w, h
    pixels = pygame.surfarray.array3d(render(renderer, view))
    rect = renderer.regions["preview"]
    assert rect.width / rect.height == pytest.approx(160 / 120, rel=0.02)
    left = tuple(pixels[rect.left + rect.width // 8, rect.centery])
    right = tuple(pixels[rect.right - rect.width // 8, rect.centery])
    red, blue = (220, 40, 40), (40, 40, 220)
    assert (left, right) == ((blue, red) if mirror else (red, blue))
    x0, y0 = renderer.preview_point(40, 20)
    x1, y1 = renderer.preview_point(100, 100)
    box = renderer.regions["face_box"]
    assert (box.left, box.top, box.right, box.bottom) == (min(x0, x1), y0, max(x0, x1), y1)
    assert tuple(pixels[box.left + 1, box.centery]) == (60, 220, 90)
    assert tuple(pixels[box.centerx, box.top + 1]) == (60, 220, 90)
    prompt = translate(FACE_PROMPT_TEXT["turn_left"], "ja")
    assert any(prompt.startswith(d.text) for d in renderer.drawn if d.role == "notice")


def test_a_grey_or_missing_preview_is_handled(renderer):
    render(renderer, representative("face", preview=synthetic_preview()[:, :, 0]))
    assert "face_box" in renderer.regions
    render(renderer, representative("face", preview=None))
    assert "face_box" not in renderer.regions and "preview" in renderer.regions


def test_the_renderer_keeps_no_frame(renderer):
    render(renderer, representative("face"))
    kept = [v for v in vars(renderer).values() if hasattr(v, "shape") or isinstance(v, pygame.Surface)]
    assert kept == []


@pytest.mark.parametrize("step", ["card_face", "chip", "deciding"])
def test_face_steps_show_progress(renderer, step):
    render(renderer, ScreenView(state="face", face_step=step))
    assert "progress" in renderer.regions
    assert translate(dict(card_face="Card face", chip="Card photo", deciding="Check")[step], "ja") in [
        d.text for d in renderer.drawn]


# ---------------------------------------------------------------------- the other screens

def test_phone_help_animates_from_the_view_clock(renderer):
    def shot(t_s):
        surface = render(renderer, ScreenView(state="phone_help", t_s=t_s))
        return pygame.image.tobytes(surface.subsurface(renderer.regions["animation"]), "RGB")

    assert shot(0.2) != shot(1.5)
    assert shot(0.2) == shot(0.2) == shot(3.2)  # deterministic, one cycle every 3 s


def test_reading_shows_progress_that_moves(renderer):
    def shot(t_s):
        surface = render(renderer, representative("reading", t_s=t_s))
        return pygame.image.tobytes(surface.subsurface(renderer.regions["progress"]), "RGB")

    assert shot(0.1) != shot(0.9)


def test_choose_method_offers_only_the_methods_given(renderer):
    render(renderer, ScreenView(state="choose_method", methods=("face", "visual")))
    events = [b.event for b in renderer.buttons]
    assert "choose_face" in events and "choose_visual" in events and "choose_pin" not in events


@pytest.mark.parametrize("proxy", [False, True])
def test_proxy_toggle_says_its_state_and_asks_for_the_other(renderer, proxy):
    render(renderer, ScreenView(state="choose_method", methods=("pin",), proxy=proxy))
    (button,) = [b for b in renderer.buttons if b.event == "proxy"]
    assert button.data == {"on": not proxy}
    state = translate("On" if proxy else "Off", "ja")
    assert any(d.text == state and button.rect.contains(d.rect) for d in renderer.drawn)


@pytest.mark.parametrize("notice", sorted(NOTICE_TEXT) + sorted(NOTICE_ALIASES) + ["CollationRefused", "Oops"])
def test_every_notice_is_written_out(renderer, notice):
    render(renderer, ScreenView(state="choose_method", methods=("pin",), notice=notice, days_left=30))
    written = "".join(d.text for d in renderer.drawn if d.role == "notice")
    expected = "".join(translate(notice_text(notice), lang).format(days=30) for lang in ("ja", "en"))
    assert expected
    assert written.replace(" ", "") == expected.replace(" ", "")


def test_the_renewal_alert_says_the_days_left(renderer):
    render(renderer, ScreenView(state="cert_notice", notice="cert_expiring", days_left=17))
    assert "17日" in "".join(d.text for d in renderer.drawn)
    render(renderer, ScreenView(state="cert_notice", cert_status="grace"))  # no notice named: from the status
    assert "同意の確認は行いません" in "".join(d.text for d in renderer.drawn)


def test_registration_refused_is_explained_with_only_ok(renderer):
    render(renderer, ScreenView(state="register", notice="registration_refused", days_left=3))
    assert [b.event for b in renderer.buttons] == ["notice_ok"]
    assert "5日以内" in "".join(d.text for d in renderer.drawn)


def test_same_as_last_time_only_with_a_previous_consent(renderer):
    render(renderer, ScreenView(state="consent"))
    assert "consent_same" not in {b.event for b in renderer.buttons}
    render(renderer, ScreenView(state="consent", previous_consent_available=True))
    assert "consent_same" in {b.event for b in renderer.buttons}


def test_notice_keys_of_the_flow_and_error_classes_have_text():
    assert notice_text("renewal_alert") == NOTICE_TEXT["cert_expiring"]
    assert notice_text("grace_eligibility_only") == NOTICE_TEXT["cert_grace"]
    assert notice_text("registration_refused_expiry") == NOTICE_TEXT["registration_refused"]
    assert notice_text("CollationRefused") == ERROR_TEXT["CollationRefused"]
    assert notice_text("card_unusable") == notice_text("phone_expired") == notice_text("") == ""
    assert notice_text("no_such_key") == ""


def test_consent_items_toggle_each_item_and_show_its_state(renderer):
    items = consent_items(on=("SpecificHealthCheckupsInfo",))
    render(renderer, ScreenView(state="consent_items", consent_items=items))
    toggles = [b for b in renderer.buttons if b.event == "consent_toggle"]
    assert [b.data for b in toggles] == [{"item": key} for key, _, _ in items]
    for button, (_, label, agreed) in zip(toggles, items, strict=True):
        inside = [d.text for d in renderer.drawn if button.rect.contains(d.rect)]
        assert translate(label, "ja") in "".join(inside)
        assert inside[-1] == translate("Agree" if agreed else "Do not agree", "ja")
    assert renderer.hit(toggles[1].rect.center) == ("consent_toggle", {"item": "SpecificHealthCheckupsInfo"})


def test_consent_items_show_a_label_the_catalogue_does_not_know(renderer):
    render(renderer, ScreenView(state="consent_items", consent_items=(("x-new", "A new item", True),)))
    assert "A new item" in [d.text for d in renderer.drawn]


@pytest.mark.parametrize(("answer", "text"), [("valid", "有効です"), ("invalid", "受付でお尋ねください"),
                                               ("no_record", "受付でお尋ねください"), (None, "確認中です")])
def test_done_shows_the_terminals_answer(renderer, answer, text):
    render(renderer, ScreenView(state="done", answer=answer))
    assert any(d.text.endswith(text) for d in renderer.drawn)


def test_done_offline_says_the_result_is_kept(renderer):
    render(renderer, ScreenView(state="done", terminal_online=False))
    assert "結果は保存されています" in "".join(d.text for d in renderer.drawn)


def test_out_of_service_shows_the_problem_and_no_button(renderer):
    surface = pygame.Surface(SIZE)
    plain = pygame.Surface(SIZE)
    assert renderer.render(surface, ScreenView(state="out_of_service", problems=("nfc: reader gone",))) == []
    renderer.render(plain, ScreenView(state="out_of_service"))
    assert pygame.image.tobytes(surface, "RGB") != pygame.image.tobytes(plain, "RGB")


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


def test_an_expired_phone_that_has_left_is_still_spoken_of_as_a_phone(renderer):
    render(renderer, ScreenView(state="unusable", notice="phone_expired"))
    assert translate("This smartphone cannot be used", "ja") in [d.text for d in renderer.drawn]


def test_unknown_state_still_renders_with_a_way_out(renderer):
    render(renderer, ScreenView(state="something_new"))
    assert [b.event for b in renderer.buttons] == ["cancel"]


def test_renderer_density_defaults_from_the_panel():
    assert ScreenRenderer((800, 480)).px_per_mm == pytest.approx(800 / 154)
    assert ScreenRenderer((1280, 800)).px_per_mm == pytest.approx(1280 / 217)
    assert ScreenRenderer((1024, 600), px_per_mm=6.0).px_per_mm == 6.0
