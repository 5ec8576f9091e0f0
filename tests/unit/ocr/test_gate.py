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


def test_unsure_label_character_does_not_count_but_unsure_era_does():
    assert judge_frame(reads(b={"low_at": 4, "low": 0.3}), today=TODAY).passed  # 年
    assert judge_frame(reads(b={"low_at": 0, "low": 0.3}), today=TODAY).reject is Reject.LOW_CONFIDENCE


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


def test_accepted_result_converts_to_the_card_layers_collation_b_and_passes_its_guard():
    from firmware.card.collation import CollationB, CollationGuard

    gate = TwoFrameGate()
    gate.feed(judge_frame(reads(), today=TODAY))
    accepted = gate.feed(judge_frame(reads(), today=TODAY))
    collation = accepted.as_collation_b()
    assert isinstance(collation, CollationB)
    assert collation.digits == "55021720352285" and collation.era == "昭和" and collation.all_confident
    CollationGuard().check(collation, tries_left=10, today=TODAY)


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
