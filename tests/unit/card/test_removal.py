"""A card pulled in the middle of an exchange: CardRemoved, and nothing half-read is kept."""

from __future__ import annotations

import pytest

from firmware.card.collation import CollationB
from firmware.card.mynumber import MyNumberCard
from firmware.errors import CardRemoved, WrongPin
from hal.sim.card.profile import AID_JPKI, read_counters
from tests.unit.card.conftest import TODAY_JST


@pytest.mark.parametrize("after", [0, 1, 2, 3])
def test_removed_mid_certificate_read(profile, reader_for, after):
    info = profile("card")
    reader = reader_for(info, max_response_bytes=251, supports_extended_apdu=False)
    card = MyNumberCard(reader.wait_for_card(0))
    card.read_token_kind()
    reader.remove_after(after + 2)  # SELECT AP, SELECT EF, then `after` READ BINARYs
    with pytest.raises(CardRemoved):
        card.read_auth_certificate()
    assert card._auth_certificate is None
    with pytest.raises(CardRemoved):  # the link stays dead
        card.read_auth_certificate()
    reader.present(info.directory)
    again = MyNumberCard(reader.wait_for_card(0))
    assert again.read_auth_certificate().der == (info.directory / "ef" / AID_JPKI / "000A.bin").read_bytes()


def test_removed_mid_photo_read(profile, reader_for, policy):
    info = profile("card")
    reader = reader_for(info, max_response_bytes=251, supports_extended_apdu=False)
    card = MyNumberCard(reader.wait_for_card(0), collation_policy=policy())
    card.verify_collation_b(CollationB.from_digits(info.collation_b, True), today=TODAY_JST)
    reader.remove_after(6)
    with pytest.raises(CardRemoved):
        card.read_card_face()


def test_wrong_try_is_spent_even_if_card_leaves_right_after(profile, reader_for):
    info = profile("card")
    reader = reader_for(info)
    card = MyNumberCard(reader.wait_for_card(0))
    card.read_token_kind()
    reader.remove_after(3)  # SELECT, SELECT, VERIFY go through; the card leaves after answering
    with pytest.raises(WrongPin):
        card.verify_pin("0000")
    with pytest.raises(CardRemoved):
        card.pin_tries_left()
    assert read_counters(info.directory)[f"{AID_JPKI}/0018"] == 2


def test_no_card_in_field(reader_for, profile):
    reader = reader_for(profile("card"))
    reader.remove()
    assert reader.wait_for_card(0) is None
    assert not reader.is_card_present()


def test_watcher_delivers_presentation_and_removal(profile, no_thread_leaks):
    import threading

    from hal.nfc.sim import SimCardReader

    info = profile("card")
    reader = SimCardReader()
    presented, removed = threading.Event(), threading.Event()
    kinds = []

    def on_card(link):
        kinds.append(MyNumberCard(link).read_token_kind().value)
        presented.set()

    reader.when_card_presented = on_card
    reader.when_card_removed = removed.set
    reader.watch()
    try:
        reader.present(info.directory)
        assert presented.wait(5)
        reader.remove()
        assert removed.wait(5)
    finally:
        reader.close()
    assert kinds == ["card"]
