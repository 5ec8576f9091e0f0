"""Screen text from gettext catalogues (``ui/locale/<lang>/LC_MESSAGES/uketsuke.po``).

Message ids are the English text; Japanese is the primary screen language and English is shown
beside it. Catalogues are read with Babel straight from the ``.po`` files (no compile step to forget
on a kiosk); a missing translation falls back to the English id, and a test checks that every id
used on a screen is translated in every catalogue.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "uketsuke"
PRIMARY_LANGUAGE = "ja"


@cache
def catalogue(language: str) -> dict[str, str]:
    """msgid → translated text for ``language`` (empty for a language without a catalogue)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        parsed = read_po(handle, locale=language)
    return {m.id: m.string for m in parsed if m.id and m.string and not m.fuzzy}


def available_languages() -> list[str]:
    return sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file())


def translate(message_id: str, language: str) -> str:
    """The text of ``message_id`` in ``language``, or the English id when untranslated."""
    return catalogue(language).get(message_id, message_id)


def bilingual(message_id: str, language: str = PRIMARY_LANGUAGE) -> tuple[str, str]:
    """(primary, secondary) lines: the chosen language, with English (or Japanese) beside it."""
    secondary = "en" if language != "en" else "ja"
    return translate(message_id, language), translate(message_id, secondary)
