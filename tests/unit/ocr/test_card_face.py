"""The synthetic card-face renderer: deterministic per seed, plausible fields, valid 照合番号B."""

import datetime as dt

import numpy as np
import pytest

from hal.sim.card_face import FRAME_SIZE, CardFaceFields, random_fields, render_card_face

EXAMPLE = CardFaceFields(name="番号\u3000花子", address=("東京都千代田区霞が関", "二丁目１番２号"),
                         birth_date=dt.date(1980, 2, 17), sex="女", expiry_date=dt.date(2035, 2, 17),
                         security_code="2285")


def test_printed_lines_and_collation_number_match_the_protocol_reference():
    assert EXAMPLE.birth_line == "昭和55年 2月17日生"
    assert EXAMPLE.expiry_line == "2035年 2月17日まで有効"
    assert EXAMPLE.collation_b == "55021720352285"
    assert EXAMPLE.expiry_on_birthday


def test_first_era_year_prints_as_gannen():
    fields = CardFaceFields("a", ("b", "c"), dt.date(2019, 5, 1), "男", dt.date(2029, 5, 1), "0001")
    assert fields.birth_line == "令和元年 5月 1日生"
    assert fields.collation_b == "01050120290001"


@pytest.mark.parametrize("bad", [dict(security_code="123"), dict(security_code="12a4"), dict(sex="X"),
                                 dict(birth_date=dt.date(1920, 1, 1))])
def test_invalid_fields_are_refused(bad):
    values = dict(name="a", address=("b", "c"), birth_date=dt.date(1980, 1, 1), sex="男",
                  expiry_date=dt.date(2030, 1, 1), security_code="1234") | bad
    with pytest.raises(ValueError):
        CardFaceFields(**values)


def test_same_seed_same_frame_and_different_seed_different_frame():
    a = render_card_face(EXAMPLE, np.random.default_rng(42))
    b = render_card_face(EXAMPLE, np.random.default_rng(42))
    c = render_card_face(EXAMPLE, np.random.default_rng(43))
    assert a.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_fields_are_deterministic_and_cover_the_eras_and_expiry_rules():
    first = [random_fields(np.random.default_rng(7)) for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(1)
    cards = [random_fields(rng) for _ in range(600)]
    eras = {c.birth_line[:2] for c in cards}
    assert eras == {"昭和", "平成", "令和"}
    on_birthday = sum(c.expiry_on_birthday for c in cards) / len(cards)
    assert 0.85 < on_birthday < 0.99  # mostly on the birthday, a minority not
    for card in cards:
        assert card.expiry_date > card.birth_date
        assert 2016 <= card.expiry_date.year <= 2037
        assert len(card.collation_b) == 14 and card.collation_b.isdigit()
