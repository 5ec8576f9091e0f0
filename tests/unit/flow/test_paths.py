"""Every path of the check-in on the bare machine: what each state offers, where each answer leads,
what the result carries. The machine does no I/O; the recording services show what it asked for."""

import pytest

from firmware.config import Face, Pin
from firmware.consent import KNOWN_ITEMS
from firmware.errors import CollationRefused, CollationTriesLow

from .conftest import NOW, context, facts, proof, refused, tap


def staff_confirmed(flow, **context_answer):
    """The staff confirm the person, then the terminal's context arrives."""
    flow.send("choose_visual")
    flow.send("visual_ok")
    flow.send("context_received", **context(flow, **context_answer))


def finish_consent(flow):
    flow.send("consent_all")
    flow.send("prescription_electronic")


def test_a_card_goes_straight_to_its_path_and_offers_three_methods(flow, services):
    tap(flow)
    assert flow.state_id == "choose_method"
    assert flow.session.methods == ("face", "pin", "visual")
    assert services.called("request_context"), "the context is asked as soon as the certificate is read"


def test_face_only_cards_offer_face_or_staff(flow):
    tap(flow, kind="face-only")
    assert flow.session.methods == ("face", "visual")
    assert refused(flow, "choose_pin")


def test_pin_path_to_done(flow, services):
    tap(flow)
    flow.send("choose_pin")
    assert flow.state_id == "pin" and services.called("read_pin_tries")
    flow.send("pin_tries", tries_left=3)
    assert flow.session.pin_tries_left == 3
    for digit in (1, 2, 3, 4):
        assert flow.type_digit(digit)
    assert not flow.type_digit(5), "a fifth digit is refused"
    flow.send("pin_submit")
    assert flow.state_id == "pin_checking" and flow.session.pin.is_zero(), "the worker has its own copy"
    (_, (session, pin, token), _) = services.called("start_pin_check")[0]
    assert bytes(pin.view()) == b"1234"
    flow.send("pin_ok", proof=proof())
    flow.send("context_received", **context(flow, registered=True))
    assert flow.state_id == "consent"
    finish_consent(flow)
    assert flow.state_id == "done"
    result = services.published[0]
    assert result["method"] == "pin" and result["proof"].signature and result["prescription"] == "electronic"
    assert set(result["consent"]) == set(KNOWN_ITEMS) and set(result["consent"].values()) == {1}


def test_a_short_pin_is_not_submitted(flow):
    tap(flow)
    flow.send("choose_pin")
    flow.type_digit(1)
    assert refused(flow, "pin_submit")


def test_a_wrong_pin_shows_the_tries_left_and_never_retries(flow, services):
    tap(flow)
    flow.send("choose_pin")
    for digit in (0, 0, 0, 0):
        flow.type_digit(digit)
    flow.send("pin_submit")
    flow.send("pin_wrong", tries_left=2)
    assert flow.state_id == "pin" and flow.session.notice == "pin_wrong" and flow.session.pin_tries_left == 2
    assert len(services.called("start_pin_check")) == 1
    assert len(services.called("read_pin_tries")) == 1, "the counter is known now: not read again"


def test_a_locked_pin_explains_and_offers_face_or_staff(flow):
    tap(flow)
    flow.send("choose_pin")
    flow.send("pin_locked")
    assert flow.state_id == "choose_method" and flow.session.notice == "pin_locked"
    assert flow.session.methods == ("face", "visual")


def test_face_path_to_done_with_its_proof(flow, services):
    tap(flow)
    flow.send("choose_face")
    assert flow.state_id == "face" and services.called("start_face")
    genuine = proof(genuineness=b"g" * 256, cvc=b"cvc")
    flow.send("face_passed", score=0.7, threshold=0.5, live=True, proof=genuine)
    assert services.called("stop_face"), "leaving the face state stops its worker"
    flow.send("context_received", **context(flow, registered=True))
    finish_consent(flow)
    result = services.published[0]
    assert result["method"] == "face" and result["proof"].genuineness


def test_three_failed_face_tries_then_pin_or_staff(flow):
    tap(flow)
    for _attempt in range(3):
        flow.send("choose_face")
        flow.send("face_failed", reason="no_match")
        assert flow.state_id == "choose_method"
    assert flow.session.notice == "face_tries_used" and "face" not in flow.session.methods
    assert flow.session.methods == ("pin", "visual")


def test_the_number_of_face_tries_is_configurable(make_flow):
    flow = make_flow(face=Face(max_tries=1))
    tap(flow)
    flow.send("choose_face")
    flow.send("face_failed", reason="not_live")
    assert "face" not in flow.session.methods


@pytest.mark.parametrize("error", [CollationRefused("unsure"), CollationTriesLow(5)])
def test_an_unsure_card_face_spends_no_try_and_offers_pin_or_staff(flow, error):
    tap(flow)
    flow.send("choose_face")
    flow.send("face_unavailable", error=error)
    assert flow.state_id == "choose_method" and flow.session.methods == ("pin", "visual")
    assert flow.session.notice == type(error).__name__ and flow.session.face_tries_left == 3


@pytest.mark.parametrize("rule_out", ["face_unavailable", "face_tries_used"])
def test_a_proxy_switched_off_again_does_not_bring_back_a_face_ruled_out(make_flow, rule_out):
    flow = make_flow(face=Face(max_tries=1))
    tap(flow)
    flow.send("choose_face")
    if rule_out == "face_unavailable":
        flow.send("face_unavailable", error=CollationRefused("unsure"))
    else:
        flow.send("face_failed", reason="no_match")
    flow.send("proxy")
    flow.send("proxy")
    assert not flow.session.proxy and flow.session.methods == ("pin", "visual")


def test_staff_visual_check_chosen_or_forced_and_refused(flow, services):
    tap(flow)
    flow.send("choose_pin")
    flow.send("visual_requested")  # forced from the terminal
    assert flow.state_id == "visual" and services.called("request_visual")
    flow.send("visual_ng")
    assert flow.state_id == "failed" and flow.session.error_kind == "VisualRefused"


def test_proxy_operation_hides_face_and_marks_the_result(flow, services):
    tap(flow)
    flow.send("proxy")
    assert flow.session.proxy and flow.session.methods == ("pin", "visual")
    staff_confirmed(flow, registered=True)
    finish_consent(flow)
    assert services.published[0]["proxy"] is True and services.published[0]["method"] == "visual"
    assert refused(flow, "proxy")  # only on the method screen


def test_iphone_proves_itself_and_goes_to_consent(flow, services):
    tap(flow, kind="iphone", the_proof=proof())
    assert flow.state_id == "checking" and flow.session.method == "smartphone"
    assert refused(flow, "card_removed", tap=1)  # a phone is taken away once it has proved itself
    flow.send("context_received", **context(flow, registered=True))
    finish_consent(flow)
    assert services.published[0]["card_kind"] == "iphone" and services.published[0]["method"] == "smartphone"


def test_android_pin_typed_on_the_kiosk_then_the_certificate(flow, services):
    flow.send("card_presented", link=object(), tap=1)
    flow.send("phone_pin_needed")
    assert flow.state_id == "phone_pin"
    for digit in (1, 2, 3, 4):
        flow.type_digit(digit)
    flow.send("pin_submit")
    assert flow.state_id == "reading"
    pin = services.called("start_card_read")[-1][1][3]
    assert bytes(pin.view()) == b"1234" and flow.session.pin.is_zero()
    flow.send("card_read", facts=facts("android"), proof=proof())
    assert flow.state_id == "checking"


def test_android_phone_taken_away_while_typing_is_asked_back(flow, services):
    flow.send("card_presented", link=object(), tap=1)
    flow.send("phone_pin_needed")
    flow.send("card_removed", tap=1)
    assert flow.state_id == "phone_pin"
    for digit in (1, 2, 3, 4):
        flow.type_digit(digit)
    flow.send("pin_submit")
    assert flow.state_id == "phone_hold"
    new_link = object()
    flow.send("card_presented", link=new_link, tap=2)
    assert flow.state_id == "reading" and services.called("start_card_read")[-1][1][1] is new_link


def test_expired_phone_cannot_be_used(flow):
    tap(flow, kind="android", status="unusable")
    assert flow.state_id == "unusable" and flow.session.notice == "phone_expired"


def test_expiring_certificate_alerts_then_goes_on(flow):
    tap(flow, status="expiring")
    assert flow.state_id == "cert_notice" and flow.session.notice == "renewal_alert"
    flow.send("notice_ok")
    assert flow.state_id == "choose_method"


def test_grace_period_is_eligibility_only_without_any_consent(flow, services):
    tap(flow, status="grace")
    assert flow.session.notice == "grace_eligibility_only"
    flow.send("notice_ok")
    staff_confirmed(flow, registered=True)
    assert flow.state_id == "done", "no consent screen at all"
    assert services.published[0]["eligibility_only"] and services.published[0]["consent"] == {}


def test_unusable_card_explains_and_asks_for_nothing(flow, services):
    tap(flow, status="unusable")
    assert flow.state_id == "unusable" and flow.session.notice == "card_unusable"
    assert not services.called("request_context")
    flow.send("card_removed", tap=1)
    assert flow.state_id == "idle"


def test_first_registration_is_asked_and_sent(flow, services):
    tap(flow)
    staff_confirmed(flow, registered=False)
    assert flow.state_id == "register"
    flow.send("register_yes")
    assert flow.state_id == "registering" and services.called("request_registration")
    flow.send("registration_answer", session_id=flow.session.id, ok=True)
    assert flow.state_id == "consent" and flow.session.registration is True


def test_registration_is_refused_within_five_days_of_expiry(flow, services):
    import datetime as dt

    tap(flow, status="expiring", not_after=NOW + dt.timedelta(days=4))
    flow.send("notice_ok")
    staff_confirmed(flow, registered=False)
    assert flow.state_id == "register" and flow.session.notice == "registration_refused_expiry"
    assert refused(flow, "register_yes") and not services.called("request_registration")
    flow.send("notice_ok")
    assert flow.state_id == "consent"


def test_consent_item_by_item_and_same_as_before(flow, services):
    tap(flow)
    staff_confirmed(flow, registered=True)
    assert refused(flow, "consent_same"), "前回と同じ only when the terminal has a previous consent"
    flow.send("consent_choose")
    assert flow.state_id == "consent_items" and set(flow.session.consent.values()) == {0}
    flow.send("consent_toggle", item="PharmacistsInfo")
    flow.send("consent_toggle", item="NotAnItem")
    flow.send("consent_done")
    flow.send("prescription_paper")
    consent = services.published[0]["consent"]
    assert consent["PharmacistsInfo"] == 1 and sum(consent.values()) == 1 and "NotAnItem" not in consent


def test_previous_consent_is_carried_over(flow, services):
    tap(flow)
    staff_confirmed(flow, registered=True, previous_consent={"DiagnosisInfo": 1})
    flow.send("consent_same")
    flow.send("prescription_electronic")
    result = services.published[0]
    assert result["carried"] and result["consent"]["DiagnosisInfo"] == 1 and result["consent"]["TestInfo"] == 0


def test_the_terminal_offline_means_the_context_times_out_and_the_visit_goes_on(flow):
    tap(flow)
    flow.send("choose_visual")
    flow.send("visual_ok")
    assert flow.state_id == "checking"
    flow.send("expired")
    assert flow.state_id == "consent"


def test_a_context_for_another_visit_is_ignored(flow):
    tap(flow)
    flow.send("choose_visual")
    flow.send("visual_ok")
    assert refused(flow, "context_received", session_id="another", context=None)


def test_done_shows_the_terminals_answer(flow, services):
    tap(flow)
    staff_confirmed(flow, registered=True)
    finish_consent(flow)
    flow.send("answer_received", result_id="r-1", eligibility="invalid")
    assert flow.session.answer == "invalid"


def test_timeouts_ask_for_more_time_first(flow):
    tap(flow)
    flow.send("choose_pin")
    flow.type_digit(1)
    flow.send("expired")
    assert flow.state_id == "more_time" and flow.session.more_time_for == "pin"
    flow.send("more_time_yes")
    assert flow.state_id == "pin"
    flow.send("expired")
    flow.send("expired")
    assert flow.state_id == "idle"


def test_shuffled_keypad(make_flow):
    orders = {make_flow(pin=Pin(shuffle_keys=True)).session.pin_keys for _ in range(8)}
    assert all(sorted(order) == list(range(10)) for order in orders) and len(orders) > 1
    assert make_flow().session.pin_keys == tuple(range(10))


def test_no_face_method_where_the_kiosk_cannot_match_faces(flow, services):
    services.face_available = lambda: False
    tap(flow)
    assert flow.session.methods == ("pin", "visual")
    flow.send("cancel")
    tap(flow, kind="face-only")
    assert flow.session.methods == ("visual",)


def test_a_phone_that_cannot_be_read_points_to_the_mynaportal_screen(flow):
    from firmware.errors import ReadError
    from ui.messages import error_text

    flow.send("card_presented", link=object(), tap=1)
    flow.send("read_failed", error=ReadError("no answer"), phone=True)
    assert flow.state_id == "failed" and flow.session.error_lineage[0] == "PhoneUnreadable"
    assert "Mynaportal" in error_text(flow.session.error_lineage)


def test_a_context_that_came_during_the_pin_is_used_at_once(flow, services):
    """The terminal usually answers while the patient types: checking must not wait for it again."""
    tap(flow)
    flow.send("choose_pin")
    flow.send("context_received", **context(flow, registered=True))
    assert flow.state_id == "pin" and flow.session.context.registered
    for digit in (1, 2, 3, 4):
        flow.type_digit(digit)
    flow.send("pin_submit")
    flow.send("pin_ok", proof=proof())
    assert flow.state_id == "consent", "straight on: the context was already there"
    assert services.announced[-2:] == ["checking", "consent"]
