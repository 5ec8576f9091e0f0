"""Every catalogue profile reads as its kind and status through firmware.card over the sim reader."""

from __future__ import annotations

import pytest

from firmware.card.jpki import PinBlocked
from firmware.card.mynumber import MyNumberCard
from hal.nfc.sim import SimCardReader
from hal.sim.card.catalogue import CATALOGUE, CHILD_AGE, make_catalogue

from .conftest import NOW


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_each_profile_reads_as_its_kind_and_status(catalogue, name):
    entry, info = CATALOGUE[name], catalogue[name]
    reader = SimCardReader(info.directory)
    try:
        card = MyNumberCard(reader.wait_for_card(0))
        assert card.read_token_kind().value == entry.kind
        if entry.kind == "android":
            card.verify_pin(info.pin)  # Android shows its certificate only after the PIN
        assert card.certificate_status(NOW).value == entry.cert_status
        if name == "card-pin-locked":
            with pytest.raises(PinBlocked):
                card.pin_tries_left()
        elif name == "card-pin-one-left":
            assert card.pin_tries_left() == 1
        elif entry.kind in ("card", "android"):
            assert card.pin_tries_left() == 3
        else:
            assert card.pin_tries_left() is None
        if entry.kind in ("card", "face-only"):
            assert card.collation_b_tries_left() == (5 if name == "card-collation-low" else 10)
            assert info.card_face_png is not None and info.face_seed is not None
    finally:
        reader.close()


def test_the_child_is_a_minor(catalogue):
    info = catalogue["card-child"]
    age = NOW.year - info.birth_date.year - ((NOW.month, NOW.day) < (info.birth_date.month, info.birth_date.day))
    assert age == CHILD_AGE and age < 18


def test_a_catalogue_is_reused_unless_a_profile_changed(tmp_path, catalogue):
    root = tmp_path / "cards"
    first = make_catalogue(root, now=NOW, ca_dir=tmp_path / "ca", names=["iphone-valid", "card-pin-one-left"],
                           card_face=False)
    again = make_catalogue(root, now=NOW, ca_dir=tmp_path / "ca", names=["iphone-valid", "card-pin-one-left"],
                           card_face=False)
    assert again == first
    toml = first["card-pin-one-left"].directory / "card.toml"
    toml.write_text(toml.read_text().replace("tries_left = 1", "tries_left = 0", 1))  # a test spent it
    remade = make_catalogue(root, now=NOW, ca_dir=tmp_path / "ca", names=["iphone-valid", "card-pin-one-left"],
                            card_face=False)
    assert remade["iphone-valid"] == first["iphone-valid"]
    assert remade["card-pin-one-left"].auth_not_after != first["card-pin-one-left"].auth_not_after \
        or "tries_left = 1" in toml.read_text()
    with pytest.raises(KeyError, match="card-valid"):
        make_catalogue(root, now=NOW, names=["card-nope"])
