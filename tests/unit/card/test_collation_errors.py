"""照合番号B errors are their own classes, and every screen says something true about them."""

from __future__ import annotations

import pytest

from firmware import errors
from firmware.errors import (
    CardError,
    CollationAlreadyFailed,
    CollationBlocked,
    CollationLedgerUnavailable,
    CollationMismatch,
    CollationRefused,
    CollationTriesLow,
    PinBlocked,
    RefusalReason,
    WrongPin,
)
from ui.i18n import available_languages, catalogue
from ui.messages import ERROR_TEXT, error_text

COLLATION_ERRORS = [CollationMismatch, CollationBlocked, CollationRefused, CollationAlreadyFailed,
                    CollationTriesLow, CollationLedgerUnavailable]


def lineage(cls) -> tuple[str, ...]:
    return tuple(c.__name__ for c in cls.__mro__)


def test_collation_errors_are_not_pin_errors():
    for cls in COLLATION_ERRORS:
        assert issubclass(cls, CardError) and not issubclass(cls, (WrongPin, PinBlocked)), cls
        assert cls.__name__ in errors.__all__
    assert issubclass(CollationMismatch, PermissionError) and issubclass(CollationBlocked, PermissionError)
    assert CollationMismatch(4).tries_left == 4
    assert CollationTriesLow(3).tries_left == 3


def test_refusals_carry_their_reason():
    assert CollationRefused("x").reason is RefusalReason.OCR_UNSURE
    assert CollationAlreadyFailed("x").reason is RefusalReason.FAILED_HERE_BEFORE
    assert CollationTriesLow(2).reason is RefusalReason.TOO_FEW_TRIES
    assert CollationLedgerUnavailable("x").reason is RefusalReason.LEDGER_UNAVAILABLE
    assert len({cls.reason for cls in COLLATION_ERRORS if issubclass(cls, CollationRefused)}) == 4


@pytest.mark.parametrize("cls", COLLATION_ERRORS)
def test_each_collation_error_has_its_own_screen_text_in_every_language(cls):
    text = error_text(lineage(cls))
    assert text == ERROR_TEXT[cls.__name__]
    assert text != ERROR_TEXT["PinBlocked"]
    assert "locked" not in text.lower() and "PIN" in text and "staff" in text  # way on: PIN or staff
    languages = available_languages()
    assert {"ja", "en"} <= set(languages)
    for language in languages:
        translated = catalogue(language).get(text)
        assert translated, f"{cls.__name__} untranslated in {language}"
    japanese = catalogue("ja")[text]
    assert "ロック" not in japanese and "暗証番号" in japanese and "職員" in japanese


def test_collation_texts_are_distinct():
    texts = [ERROR_TEXT[cls.__name__] for cls in COLLATION_ERRORS]
    assert len(set(texts)) == len(texts)
