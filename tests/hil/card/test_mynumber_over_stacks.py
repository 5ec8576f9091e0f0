"""The firmware's card code (``MyNumberCard``) over both real stacks, against generated virtual cards.

pcsc: pyscard → pcscd → vpcd driver → TCP → ``VpcdCard`` → ``VirtualCard``.
nfcpy: nfcpy's PN532 driver → pty → ``Pn532Emulator`` → ``TypeBCard`` (ISO-DEP) → ``VirtualCard``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from firmware.card.certificate import CertStatus
from firmware.card.collation import CollationB, CollationPolicy
from firmware.card.collation_ledger import CollationLedger
from firmware.card.jpki import TokenKind
from firmware.card.mynumber import MyNumberCard
from firmware.errors import NotMyNumberCard, PinBlocked, SecurityStatusNotSatisfied, WrongPin
from hal.errors import CardRemoved
from hal.nfc.nfcpy import open_reader as open_nfcpy
from hal.nfc.pcsc import open_reader as open_pcsc
from hal.sim.card import VirtualCard
from hal.sim.vpcd import VpcdCard
from tests.hil.card.conftest import VPCD_PORT, wait_until_empty

pytestmark = pytest.mark.hil

JPKI = "D392F000260100000001"
KENMEN = "D3921000310001010402"
NONCE = b"terminal nonce 0123456789abcdef"


class PcscStack:
    """A virtual card in pcscd's vpcd reader, read through our pyscard backend."""

    name = "pcsc"

    def __init__(self, reader_name: str, profile) -> None:
        self.reader_name = reader_name
        self.card = VirtualCard(profile.directory)
        self.reader = open_pcsc(reader_name)
        self.reader.start()
        self.vpcd = VpcdCard(self.card, port=VPCD_PORT).insert()

    def tap(self):
        link = self.reader.wait_for_card(5)
        assert link is not None, "card not seen by pcscd"
        return link

    def pull_after(self, commands: int) -> None:
        self.vpcd.pull_after_commands(commands)

    def put_back(self) -> None:
        self.vpcd.remove()
        wait_until_empty(self.reader_name)
        self.vpcd = VpcdCard(self.card, port=VPCD_PORT).insert()

    def close(self) -> None:
        self.reader.close()
        self.vpcd.remove()
        wait_until_empty(self.reader_name)


class NfcpyStack:
    """A virtual card on the emulated PN532, read through our nfcpy backend."""

    name = "nfcpy"

    def __init__(self, pn532, profile) -> None:
        self.card = VirtualCard(profile.directory)
        self.emulator, self.radio = pn532(self.card)
        self.reader = open_nfcpy(f"tty:{self.emulator.path}:pn532")
        self.reader.start()

    def tap(self):
        link = self.reader.wait_for_card(2)
        assert link is not None, "card not sensed by nfcpy"
        return link

    def pull_after(self, commands: int) -> None:
        self.radio.pull_after_commands(commands)

    def put_back(self) -> None:
        self.radio.insert()

    def close(self) -> None:
        self.reader.close()


@pytest.fixture(params=["pcsc", "nfcpy"])
def stack_for(request, make_card, pn532):
    """``stack_for(kind) -> (stack, profile info)`` on each real stack."""
    opened = []

    def build(kind: str = "card"):
        profile = make_card(kind)
        if request.param == "pcsc":
            reader_name = request.getfixturevalue("pcscd")
            stack = PcscStack(reader_name, profile)
        else:
            stack = NfcpyStack(pn532, profile)
        opened.append(stack)
        return stack, profile

    yield build
    for stack in opened:
        stack.close()


def issuer_keys(profile):
    key = serialization.load_pem_public_key(profile.cvc_issuer_public_pem.read_bytes())
    return {profile.cvc_issuer_reference: key}


def test_physical_card_every_read(stack_for, tmp_path):
    stack, profile = stack_for("card")
    card = MyNumberCard(stack.tap(), collation_policy=CollationPolicy(CollationLedger(tmp_path / "kiosk")))
    assert card.read_token_kind() is TokenKind.CARD
    certificate = card.read_auth_certificate()
    assert certificate.der == (profile.directory / "ef" / JPKI / "000A.bin").read_bytes()[: len(certificate.der)]
    ca = card.read_auth_ca_certificate()
    certificate.x509.verify_directly_issued_by(ca.x509)
    assert card.certificate_status(dt.datetime(2027, 1, 1, tzinfo=dt.UTC)) is CertStatus.VALID
    assert card.pin_tries_left() == 3
    card.verify_pin(profile.pin)
    signature = card.sign_nonce(NONCE)
    certificate.public_key.verify(signature, NONCE, padding.PKCS1v15(), hashes.SHA256())
    proof = card.prove_genuine(NONCE, issuer_keys(profile))
    assert proof.card_certificate.issuer_reference == profile.cvc_issuer_reference
    assert card.collation_b_tries_left() == 10
    card.verify_collation_b(CollationB.from_digits(profile.collation_b, confident=True))
    photo = card.read_photo()
    try:
        assert photo.dtype == np.uint8 and photo.ndim == 2 and min(photo.shape) >= 64
        assert photo.std() > 5  # a face, not a blank
    finally:
        photo.fill(0)
    assert card.collation_b_tries_left() == 10  # a right number resets nothing it should not


def test_wrong_pin_down_to_block_persists_across_taps(stack_for):
    stack, profile = stack_for("card")
    card = MyNumberCard(stack.tap())
    wrong = "0000" if profile.pin != "0000" else "1111"
    for expected in (2, 1):
        with pytest.raises(WrongPin) as caught:
            card.verify_pin(wrong)
        assert caught.value.tries_left == expected
    with pytest.raises(PinBlocked):
        card.verify_pin(wrong)
    with pytest.raises(PinBlocked):
        card.verify_pin(profile.pin)  # blocked means blocked, even for the right PIN
    stack.pull_after(0)
    with pytest.raises(CardRemoved):
        card.pin_tries_left()  # talks to the card (the token kind is cached after the first read)
    stack.put_back()
    again = MyNumberCard(stack.tap())
    with pytest.raises(PinBlocked):
        again.pin_tries_left()
    with pytest.raises(SecurityStatusNotSatisfied):
        again.sign_nonce(NONCE)


def test_android_needs_the_pin_before_the_certificate(stack_for):
    stack, profile = stack_for("android")
    card = MyNumberCard(stack.tap())
    assert card.read_token_kind() is TokenKind.ANDROID
    with pytest.raises(SecurityStatusNotSatisfied):
        card.read_auth_certificate()
    card.verify_pin(profile.pin)
    certificate = card.read_auth_certificate()
    certificate.public_key.verify(card.sign_nonce(NONCE), NONCE, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(NotMyNumberCard):
        card.collation_b_tries_left()


def test_iphone_signs_without_pin(stack_for):
    stack, _ = stack_for("iphone")
    card = MyNumberCard(stack.tap())
    assert card.read_token_kind() is TokenKind.IPHONE
    assert card.pin_tries_left() is None
    certificate = card.read_auth_certificate()
    certificate.public_key.verify(card.sign_nonce(NONCE), NONCE, padding.PKCS1v15(), hashes.SHA256())


def test_face_only_card_has_no_pin_but_a_face(stack_for):
    stack, profile = stack_for("face-only")
    card = MyNumberCard(stack.tap())
    assert card.read_token_kind() is TokenKind.FACE_ONLY_CARD
    assert card.pin_tries_left() is None
    assert card.read_auth_certificate().der
    with pytest.raises(SecurityStatusNotSatisfied):
        card.sign_nonce(NONCE)
    card.prove_genuine(NONCE, issuer_keys(profile))


@pytest.mark.parametrize("pulled_after", [4, 7])
def test_card_pulled_mid_certificate_leaves_no_half_state(stack_for, pulled_after):
    stack, profile = stack_for("card")
    card = MyNumberCard(stack.tap())
    card.read_token_kind()  # SELECT AP, SELECT EF 0006, READ, SELECT EF 0018, VERIFY-less: 5 APDUs
    stack.pull_after(pulled_after - 4)  # the card leaves while the certificate is being read
    with pytest.raises(CardRemoved):
        card.read_auth_certificate()
    assert card._auth_certificate is None  # nothing half-read is kept
    with pytest.raises(CardRemoved):
        card.read_auth_certificate()
    stack.put_back()
    again = MyNumberCard(stack.tap())
    certificate = again.read_auth_certificate()
    assert certificate.der == (profile.directory / "ef" / JPKI / "000A.bin").read_bytes()[: len(certificate.der)]


def test_card_pulled_mid_photo_raises_card_removed(stack_for, tmp_path):
    stack, profile = stack_for("card")
    card = MyNumberCard(stack.tap(), collation_policy=CollationPolicy(CollationLedger(tmp_path / "kiosk")))
    card.verify_collation_b(CollationB.from_digits(profile.collation_b, confident=True))
    stack.pull_after(8)  # a few chunks into the 8 KB card-face record
    with pytest.raises(CardRemoved):
        card.read_photo()
