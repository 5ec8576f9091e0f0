"""``MyNumberCard(link)``: everything the check-in flow asks of a My Number card or phone token.

One object per tap. It caches only complete results (token kind, certificate), so a card pulled
in the middle of a read raises :class:`~hal.errors.CardRemoved` and leaves nothing half-read.
PINs and 照合番号B never appear in its repr, its logs or its errors.
"""

from __future__ import annotations

import datetime as dt
import logging

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from firmware.card.apdu import CardChannel
from firmware.card.certificate import AuthCertificate, CertificateError, CertStatus
from firmware.card.collation import CollationB, CollationPolicy
from firmware.card.genuineness import genuineness_data
from firmware.card.jpki import (
    EF_AUTH_CA_CERT,
    EF_AUTH_CERT,
    MAX_NONCE_BYTES,
    JpkiApplication,
    NoPinOnToken,
    TokenKind,
    sha256_digest_info,
)
from firmware.card.kenmen import CardFace, GenuinenessProof, KenmenApplication, decode_photo
from firmware.errors import CollationLedgerUnavailable, ReadError
from hal.contracts import CardLink

log = logging.getLogger(__name__)


class MyNumberCard:
    """A My Number card (or smartphone JPKI token) in the reader's field."""

    def __init__(self, link: CardLink, *, collation_policy: CollationPolicy | None = None):
        self.link = link
        self.channel = CardChannel(link)
        self.jpki = JpkiApplication(self.channel)
        self.kenmen = KenmenApplication(self.channel)
        self._token_kind: TokenKind | None = None
        self._auth_certificate: AuthCertificate | None = None
        #: None: :meth:`verify_collation_b` refuses (the kiosk never tries without a ledger).
        self.collation_policy = collation_policy

    def __repr__(self) -> str:
        kind = self._token_kind.value if self._token_kind else "unknown"
        return f"MyNumberCard(kind={kind})"

    # ------------------------------------------------------------------ JPKI

    def read_token_kind(self) -> TokenKind:
        """Card, face-only card, Android or iPhone (from EF 0006; face-only: no PIN EF)."""
        if self._token_kind is None:
            self._token_kind = self.jpki.read_token_kind()
            log.info("token kind: %s", self._token_kind.value)
        return self._token_kind

    def read_auth_certificate(self) -> AuthCertificate:
        """The user-authentication certificate (EF 000A). Android: call :meth:`verify_pin` first."""
        if self._auth_certificate is None:
            der = self.jpki.read_certificate(EF_AUTH_CERT, "user-authentication certificate")
            self._auth_certificate = AuthCertificate(der)
            log.debug("read the user-authentication certificate (%d bytes)", len(der))
        return self._auth_certificate

    def read_auth_ca_certificate(self) -> AuthCertificate:
        """The CA certificate of the user-authentication certificate (EF 000B)."""
        return AuthCertificate(self.jpki.read_certificate(EF_AUTH_CA_CERT, "user-authentication CA"))

    def certificate_status(self, now: dt.datetime | None = None) -> CertStatus:
        """Status of the auth certificate at ``now`` (default: the system clock, in UTC)."""
        now = now or dt.datetime.now(dt.UTC)
        return self.read_auth_certificate().status_at(now, self.read_token_kind())

    def pin_tries_left(self) -> int | None:
        """Tries left on the user-authentication PIN, spending none; None when the token has no PIN."""
        if not self.read_token_kind().has_pin:
            return None
        return self.jpki.pin_tries_left()

    def verify_pin(self, pin: str) -> None:
        """VERIFY the 4-digit PIN. Raises WrongPin(tries_left), PinBlocked, PinFormatError or NoPinOnToken."""
        kind = self.read_token_kind()
        if not kind.has_pin:
            raise NoPinOnToken(f"a {kind.value} token has no PIN at the reader")
        self.jpki.verify_pin(pin)

    def verify_pin_buffer(self, pin) -> None:
        """VERIFY the PIN held in a :class:`~firmware.secrets.SecretBuffer` (never made a ``str``)."""
        kind = self.read_token_kind()
        if not kind.has_pin:
            raise NoPinOnToken(f"a {kind.value} token has no PIN at the reader")
        view = pin.view()
        try:
            self.jpki.verify_pin(view)
        finally:
            view.release()

    def sign_nonce(self, nonce: bytes) -> bytes:
        """Sign SHA-256 DigestInfo(nonce) with the auth key (after :meth:`verify_pin`, except iPhone).

        The signature is checked against the certificate's key before it is returned, so a card
        that answers garbage is a ReadError here rather than a rejected check-in at the terminal.
        """
        if not 0 < len(nonce) <= MAX_NONCE_BYTES:
            raise ValueError(f"the nonce must be 1..{MAX_NONCE_BYTES} bytes")
        signature = self.jpki.sign(sha256_digest_info(nonce))
        try:
            key = self.read_auth_certificate().public_key
            key.verify(signature, _sha256(nonce), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        except InvalidSignature as exc:
            raise ReadError("the card's signature does not verify with its own certificate") from exc
        except CertificateError:
            raise
        return signature

    # ------------------------------------------------------------------ 券面事項確認AP (physical cards)

    def collation_b_tries_left(self) -> int:
        """Tries left on 照合番号B (EF 0012), spending none. Phones raise NotMyNumberCard."""
        return self.kenmen.collation_b_tries_left()

    def verify_collation_b(self, collation: CollationB, today: dt.date | None = None) -> None:
        """VERIFY 照合番号B behind the policy (OCR sure, no try lost here before, counter high enough).

        The card's ledger key comes from the auth certificate (read here if the caller has not yet).

        Raises:
            CollationRefused (or a subclass, see its ``reason``): nothing was sent; offer PIN or staff.
            CollationMismatch / CollationBlocked: the card refused the number / its counter is at zero.
        """
        policy = self.collation_policy
        if policy is None or policy.ledger is None:
            raise CollationLedgerUnavailable("no 照合番号B policy with a ledger: the kiosk does not try without one")
        policy.check_reading(collation, today)  # refuse an unsure reading before touching the card
        card_key = policy.ledger.card_key(self.read_auth_certificate())
        self.kenmen.verify_collation_b(collation, policy, card_key, today)

    def read_card_face(self) -> CardFace:
        """EF 0002 split into its items (after :meth:`verify_collation_b`)."""
        return self.kenmen.read_card_face()

    def read_photo(self):
        """The card photo as an (H, W) uint8 greyscale array; the caller zeroes it after use.

        Reads DF27 alone (after :meth:`verify_collation_b`), not the name and address images.
        """
        jp2 = self.kenmen.read_photo_jp2()
        try:
            return decode_photo(bytes(jp2))
        finally:
            jp2[:] = bytes(len(jp2))

    def prove_genuine(self, nonce: bytes, issuer_keys, today: dt.date | None = None) -> GenuinenessProof:
        """Card genuineness without PIN: verified EF 0004 CVC + the card's signature over ``nonce``
        bound to the user-authentication certificate this object read (:mod:`firmware.card.genuineness`).

        The certificate is the one cached for this tap (read here if it was not yet), so the proof
        belongs to the certificate the result will carry.
        """
        data = genuineness_data(nonce, self.read_auth_certificate().der)
        return self.kenmen.prove_genuine(data, issuer_keys, today)


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()
