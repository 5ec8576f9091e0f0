"""The 照合番号B gate: a confident consistent read passes, and each rule on its own rejects."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.card.ocr.gate import FieldReads, FrameVerdict, Reject, TwoFrameGate, judge_frame
from firmware.card.ocr.model import CharRead, FieldRead

TODAY = dt.date(2026, 11, 1)


def field(text: str, prob: float = 0.999, low_at: int | None = None, low: float = 0.5) -> FieldRead:
    return FieldRead(tuple(CharRead(c, low if i == low_at else prob) for i, c in enumerate(text)))


def reads(birth="昭和55年 2月17日生", expiry="2035年 2月17日まで有効", code="2285", **kw) -> FieldReads:
    return FieldReads(field(birth, **kw.get("b", {})), field(expiry, **kw.get("e", {})),
                      field(code, **kw.get("c", {})))


def test_confident_consistent_read_passes_with_the_reference_example():
    verdict = judge_frame(reads(), today=TODAY)
    assert verdict.passed
    assert verdict.digits == "55021720352285"
    assert verdict.birth_date == dt.date(1980, 2, 17)
    assert "55021720352285" not in repr(verdict)


def test_reiwa_and_gannen_read():
    verdict = judge_frame(reads("令和元年 5月 1日生", "2029年 5月 1日まで有効", "0007"), today=TODAY)
    assert verdict.digits == "01050120290007"


@pytest.mark.parametrize(("birth", "expiry", "code"), [
    ("昭和55年02月17日生", "2035年 2月17日まで有効", "2285"),  # leading zero never printed
    ("昭和55年 2月17日", "2035年 2月17日まで有効", "2285"),  # label 生 missing
    ("昭和5年 2月17日生5", "2035年 2月17日まで有効", "2285"),
    ("昭和55年 2月17日生", "2035年 2月17日まで", "2285"),
    ("昭和55年 2月17日生", "2035年 2月17日まで有効", "228"),  # three-digit code
    ("昭和55年 2月17日生", "2035年 2月17日まで有効", "22851"),
    ("和55年 2月17日生", "2035年 2月17日まで有効", "2285"),  # half an era
    ("昭成55年 2月17日生", "2035年 2月17日まで有効", "2285"),
])
def test_format_rejects(birth, expiry, code):
    assert judge_frame(reads(birth, expiry, code), today=TODAY).reject is Reject.FORMAT


@pytest.mark.parametrize("birth", ["昭和65年 2月17日生", "平成31年 5月 1日生", "令和元年 4月30日生",
                                   "昭和55年 2月30日生", "令和 9年 2月17日生"])
def test_bad_dates_reject(birth):
    expiry = "2035年 2月17日まで有効" if "2月17" in birth else "2035年 5月 1日まで有効"
    if "4月30" in birth:
        expiry = "2035年 4月30日まで有効"
    if "2月30" in birth:
        expiry = "2035年 2月28日まで有効"
    verdict = judge_frame(reads(birth, expiry), today=TODAY)
    assert verdict.reject in (Reject.BAD_DATE, Reject.EXPIRY_NOT_BIRTHDAY) and not verdict.passed
    if "4月30" in birth or "65年" in birth or "31年 5月" in birth or "令和 9" in birth:
        assert verdict.reject is Reject.BAD_DATE


@pytest.mark.parametrize("expiry", ["2015年 2月17日まで有効", "2038年 2月17日まで有効"])
def test_expiry_year_out_of_programme_range_rejects(expiry):
    assert judge_frame(reads(expiry=expiry), today=TODAY).reject is Reject.EXPIRY_RANGE


def test_expiry_not_after_birth_rejects():
    verdict = judge_frame(reads("令和 7年 2月17日生", "2025年 2月17日まで有効"), today=TODAY)
    assert verdict.reject is Reject.EXPIRY_RANGE


def test_expiry_not_on_birthday_rejects_even_when_confident():
    verdict = judge_frame(reads(expiry="2035年 2月18日まで有効"), today=TODAY)
    assert verdict.reject is Reject.EXPIRY_NOT_BIRTHDAY


@pytest.mark.parametrize("which", ["b", "e", "c"])
def test_one_unsure_value_character_rejects(which):
    low_at = {"b": 2, "e": 1, "c": 3}[which]  # a digit in each field
    verdict = judge_frame(reads(**{which: {"low_at": low_at, "low": 0.89}}), today=TODAY)
    assert verdict.reject is Reject.LOW_CONFIDENCE
    assert verdict.min_value_prob == pytest.approx(0.89)


def test_every_character_counts_labels_and_era_too():
    assert judge_frame(reads(b={"low_at": 4, "low": 0.3}), today=TODAY).reject is Reject.LOW_CONFIDENCE  # 年
    assert judge_frame(reads(b={"low_at": 0, "low": 0.3}), today=TODAY).reject is Reject.LOW_CONFIDENCE  # 昭
    assert judge_frame(reads(e={"low_at": 12, "low": 0.3}), today=TODAY).reject is Reject.LOW_CONFIDENCE  # 効


def birth_with(chars) -> FieldRead:
    return FieldRead(tuple(CharRead(c, p, h) for c, p, h in chars))


def showa_birth(year_chars) -> FieldRead:
    """昭和<year_chars>年 2月17日生, every other character sure."""
    sure = [(c, 0.999, 1.0) for c in "昭和"]
    rest = [(c, 0.999, 1.0) for c in "年"] + [(" ", 0.999, 0.0)] + [(c, 0.999, 1.0) for c in "2月17日生"]
    return birth_with(sure + list(year_chars) + rest)


def test_digit_read_as_low_probability_padding_is_refused():
    """昭和55 with the first 5 decoded as a 0.55 'space' under which a 5 was likely: 昭和 5 must not pass."""
    expiry = field("2035年 2月17日まで有効")
    code = field("2285")
    hidden_five = showa_birth([(" ", 0.55, 0.40), ("5", 0.999, 1.0)])
    verdict = judge_frame(FieldReads(hidden_five, expiry, code), today=TODAY)
    assert verdict.reject is Reject.LOW_CONFIDENCE and verdict.min_value_prob == pytest.approx(0.55)
    # The same space without a measured hidden digit (a reader that does not say): needs 0.9 too.
    unmeasured = showa_birth([(" ", 0.55, 1.0), ("5", 0.999, 1.0)])
    assert judge_frame(FieldReads(unmeasured, expiry, code), today=TODAY).reject is Reject.LOW_CONFIDENCE
    # A genuine padding space (model unsure it is a space, but sure no digit is there) passes: 昭和 5.
    genuine = showa_birth([(" ", 0.55, 0.001), ("5", 0.999, 1.0)])
    verdict = judge_frame(FieldReads(genuine, field("2035年 2月17日まで有効"), code), today=TODAY)
    assert verdict.passed and verdict.digits == "05021720352285"


@pytest.mark.parametrize("birth", [
    "昭和 55年 2月17日生",   # padding before a two-digit year
    "昭和5 5年 2月17日生",   # padding between digits
    "昭和55 年 2月17日生",   # padding after the year
    "昭和55年  2月17日生",   # two padding spaces
    "昭和55年 2月17日 生",
    "平成 1年 2月17日生",    # cards print 元年, never 1年
    "平成1年 2月17日生",
    "令和 0年 2月17日生",
])
def test_padding_only_where_the_card_prints_it_and_gannen_only_as_gan(birth):
    assert judge_frame(reads(birth), today=TODAY).reject is Reject.FORMAT


@pytest.mark.parametrize(("birth", "digits"), [
    ("昭和55年 2月17日生", "550217"), ("昭和55年2月17日生", "550217"), ("昭和 5年 2月17日生", "050217"),
    ("昭和5年 2月17日生", "050217"), ("平成元年 2月17日生", "010217"), ("平成31年 2月17日生", "310217"),
])
def test_padding_may_be_read_or_omitted(birth, digits):
    verdict = judge_frame(reads(birth), today=TODAY)
    assert verdict.passed and verdict.digits[:6] == digits


@given(st.sampled_from(["昭和", "平成", "令和"]), st.integers(1, 70), st.integers(1, 12), st.integers(1, 28),
       st.booleans())
@settings(max_examples=300, deadline=None)
def test_era_year_is_cross_checked_against_the_era(era_name, year, month, day, pad):
    from firmware.card.ocr import era

    year_text = "元" if year == 1 else (f" {year}" if year < 10 and pad else str(year))
    birth = f"{era_name}{year_text}年{month:2d}月{day:2d}日生"
    verdict = judge_frame(reads(birth, f"2035年{month:2d}月{day:2d}日まで有効"), today=TODAY)
    try:
        real = era.to_gregorian(era_name, year, month, day)
    except ValueError:
        real = None
    if real is None or real > TODAY:
        assert not verdict.passed
    elif verdict.passed:
        assert verdict.birth_date == real and verdict.digits[:2] == f"{year:02d}"


def test_two_frame_gate_needs_two_agreeing_passed_frames():
    good = judge_frame(reads(), today=TODAY)
    other = judge_frame(reads(code="2288"), today=TODAY)
    gate = TwoFrameGate()
    assert gate.feed(good) is None
    assert gate.feed(other) is None and gate.last_reject is Reject.FRAMES_DISAGREE
    accepted = gate.feed(other)
    assert accepted is not None and accepted.digits == "55021720352288" and accepted.frames == 2
    assert "2288" not in repr(accepted)


def test_failed_frame_breaks_the_chain():
    good = judge_frame(reads(), today=TODAY)
    gate = TwoFrameGate()
    assert gate.feed(good) is None
    assert gate.feed(FrameVerdict(None, Reject.LOW_CONFIDENCE)) is None
    assert gate.feed(good) is None
    assert gate.feed(good).security_code == "2285"


def test_min_char_prob_of_accepted_pair_is_the_lower_frame():
    high = judge_frame(reads(), today=TODAY)
    lower = judge_frame(reads(c={"low_at": 0, "low": 0.93}), today=TODAY)
    gate = TwoFrameGate()
    gate.feed(high)
    assert gate.feed(lower).min_char_prob == pytest.approx(0.93)


def test_accepted_result_converts_to_the_card_layers_collation_b_and_passes_its_policy():
    from firmware.card.collation import CollationB, CollationPolicy

    gate = TwoFrameGate()
    gate.feed(judge_frame(reads(), today=TODAY))
    accepted = gate.feed(judge_frame(reads(), today=TODAY))
    collation = accepted.as_collation_b()
    assert isinstance(collation, CollationB)
    assert collation.digits == "55021720352285" and collation.era == "昭和" and collation.all_confident
    CollationPolicy(ledger=None).check_reading(collation, today=TODAY)


@given(st.text(alphabet="昭和平成令元0123456789年月日生 ", max_size=16),
       st.text(alphabet="0123456789年月日まで有効 ", max_size=18),
       st.text(alphabet="0123456789", max_size=6),
       st.floats(0.0, 1.0))
@settings(max_examples=300, deadline=None)
def test_any_decoded_text_gives_a_verdict_never_a_crash(birth, expiry, code, prob):
    verdict = judge_frame(reads(birth, expiry, code, b={"prob": prob}), today=TODAY)
    if verdict.passed:
        assert len(verdict.digits) == 14 and verdict.digits.isdigit()
        assert verdict.digits[-4:] == code and prob >= 0.9
        assert verdict.digits[6:10] == expiry.replace(" ", "")[:4]
