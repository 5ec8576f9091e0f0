"""The 券面事項確認AP (card face): 照合番号B, the card-face record (EF 0002), the photo, genuineness.

Only physical cards carry it (a phone answers 6A82 → :class:`NotMyNumberCard`). Order inside one
tap: VERIFY 照合番号B (EF 0012) → READ EF 0002 (``FF20``: DF22 birth date, DF23 sex, DF25/26 name
and address images, DF27 JPEG 2000 photo, DF29 expiry, DF2A security-code image …). The
genuineness check needs no PIN: EF 0004 holds the card's key certified by its issuer, and the AP
signs data the reader chooses with that key (``80 2A 00 00``); the kiosk has it sign the terminal's
challenge bound to the tap's certificate (:mod:`firmware.card.genuineness`).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass, field

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from PIL import Image, UnidentifiedImageError

from firmware.card import tlv
from firmware.card.apdu import SW_END_OF_FILE, SW_OK, CardChannel, CommandApdu, check_sw
from firmware.card.collation import CollationB, CollationPolicy
from firmware.card.cvc import CardNotGenuine, CardVerifiableCertificate, parse_cvc
from firmware.card.jpki import sha256_digest_info
from firmware.errors import CollationBlocked, CollationLedgerUnavailable, CollationMismatch, ReadError

log = logging.getLogger(__name__)

AID_KENMEN_KAKUNIN = bytes.fromhex("D3921000310001010402")
EF_CARD_FACE = b"\x00\x02"
EF_CARD_CVC = b"\x00\x04"
EF_COLLATION_B = b"\x00\x12"
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_CODESTREAM = b"\xff\x4f\xff\x51"
MAX_PHOTO_PIXELS = 1024 * 1024
#: The first read of EF 0002 covers the record's header and its short items; later header reads
#: (one per skipped image) ask for a few bytes only.
HEADER_READ_BYTES = 8
FIRST_READ_BYTES = 128


class PhotoError(ReadError, ValueError):
    """The card's photo (DF27) is missing or not a decodable JPEG 2000 image."""


@dataclass(frozen=True)
class CardFace:
    """EF 0002 split into its items. Personal data: never log or persist it; :meth:`wipe` after use.

    The images are bytearrays so that :meth:`wipe` can zero them (the photo is a face image).
    """

    birth_date: str  # YYYYMMDD as on the card
    sex: str
    expiry_date: str  # YYYYMMDD
    photo_jp2: bytearray = field(repr=False)
    name_image: bytearray = field(repr=False)
    address_image: bytearray = field(repr=False)
    security_code_image: bytearray = field(repr=False)

    def __repr__(self) -> str:
        return f"CardFace(photo {len(self.photo_jp2)} bytes)"

    def photo_greyscale(self) -> np.ndarray:
        """Decode the photo to an (H, W) uint8 array that the caller owns and must zero after use."""
        return decode_photo(bytes(self.photo_jp2))

    def wipe(self) -> None:
        """Zero the photo and the name/address/security-code images."""
        for buffer in (self.photo_jp2, self.name_image, self.address_image, self.security_code_image):
            buffer[:] = bytes(len(buffer))


@dataclass(frozen=True)
class GenuinenessProof:
    """What the terminal gets for a face check: the card's CVC and its signature over ``signed``.

    ``signed`` is the data whose SHA-256 DigestInfo the card signed (for the kiosk: the terminal's
    nonce bound to the certificate, :func:`firmware.card.genuineness.genuineness_data`).
    """

    card_certificate: CardVerifiableCertificate
    signed: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"GenuinenessProof(issuer={self.card_certificate.issuer_reference})"


def decode_photo(jp2: bytes) -> np.ndarray:
    """JPEG 2000 (JP2 box or raw codestream) → greyscale uint8 array; raises :class:`PhotoError`."""
    if not (jp2.startswith(JP2_SIGNATURE) or jp2.startswith(J2K_CODESTREAM)):
        raise PhotoError("DF27 is not JPEG 2000 (no JP2 signature box or J2K codestream marker)")
    try:
        with Image.open(io.BytesIO(jp2), formats=["JPEG2000"]) as image:
            if image.width * image.height > MAX_PHOTO_PIXELS:
                raise PhotoError(f"the card photo is {image.width}x{image.height}: too large for a card photo")
            grey = np.array(image.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        if isinstance(exc, PhotoError):
            raise
        raise PhotoError(f"the card photo does not decode as JPEG 2000: {exc}") from exc
    return grey


def split_card_face(record: bytes) -> CardFace:
    """Split the ``FF20`` record of EF 0002 into a :class:`CardFace`; raises ReadError if malformed."""
    outer = tlv.parse_exact(record)
    if outer.tag != 0xFF20:
        raise tlv.TlvError(f"EF 0002 starts with tag {outer.tag:X}, not FF20")
    items = {item.tag: item.value for item in outer.children()}
    if 0xDF27 not in items:
        raise PhotoError("EF 0002 has no photo (DF27)")

    def text(tag: int) -> str:
        return items.get(tag, b"").decode("ascii", "replace")

    return CardFace(birth_date=text(0xDF22), sex=text(0xDF23), expiry_date=text(0xDF29),
                    photo_jp2=bytearray(items[0xDF27]), name_image=bytearray(items.get(0xDF25, b"")),
                    address_image=bytearray(items.get(0xDF26, b"")),
                    security_code_image=bytearray(items.get(0xDF2A, b"")))


class KenmenApplication:
    """Commands of the 券面事項確認AP over a :class:`CardChannel`."""

    def __init__(self, channel: CardChannel):
        self.channel = channel

    def select(self) -> None:
        self.channel.select_application(AID_KENMEN_KAKUNIN, "券面事項確認AP (card face)")

    def collation_b_tries_left(self) -> int:
        """VERIFY without data on EF 0012: the counter, spending no try. Raises CollationBlocked at zero."""
        self.select()
        self.channel.select_file(EF_COLLATION_B)
        response = self.channel.send(CommandApdu(0x00, 0x20, 0x00, 0x80))
        if response.sw >> 4 == 0x63C:
            if response.sw & 0xF == 0:
                raise CollationBlocked("the 照合番号B counter is at zero")
            return response.sw & 0xF
        if response.sw in (0x6983, 0x6984):
            raise CollationBlocked(f"VERIFY (tries left) 照合番号B: blocked ({response.sw:04X})")
        check_sw(response.sw, "VERIFY (tries left) 照合番号B")
        raise ReadError(f"VERIFY without data answered {response.sw:04X}, not 63Cx", sw=response.sw)

    def verify_collation_b(self, collation: CollationB, policy: CollationPolicy, card_key: str,
                           today: dt.date | None = None) -> None:
        """Spend one 照合番号B try, only if ``policy`` allows it for ``collation``, the card and its counter.

        ``card_key`` is the card's ledger key (``policy.ledger.card_key(auth_certificate)``). The try is
        written ahead to the ledger before the VERIFY goes out and resolved after; anything but the
        card's 9000 (a wrong number, a card pulled mid-command, an odd status word) is recorded as a
        lost try, because the kiosk cannot tell that the counter did not move.

        Raises:
            CollationRefused (or a subclass): the policy refused; nothing was sent.
            CollationMismatch: the card refused the number (``tries_left`` = the counter after it).
            CollationBlocked: the counter is (now) at zero.
        """
        policy.check_reading(collation, today)
        policy.check_history(card_key)
        policy.check_counter(self.collation_b_tries_left())  # selects AP and EF 0012
        ledger = policy.ledger
        assert ledger is not None  # check_history refuses without one
        attempt = ledger.begin(card_key)  # raises (and nothing is sent) if it cannot be written
        try:
            response = self.channel.send(CommandApdu(0x00, 0x20, 0x00, 0x80, collation.digits.encode("ascii"),
                                                     sensitive=True))
        except BaseException:
            _record(ledger.failed, attempt)  # outcome unknown: count it
            raise
        if response.sw == SW_OK:
            _record(ledger.succeeded, attempt)
            log.info("照合番号B verified")
            return
        _record(ledger.failed, attempt)
        log.warning("照合番号B not accepted by the card (SW %04X); the kiosk will not try this card again",
                    response.sw)
        if response.sw == 0x63C0 or response.sw in (0x6983, 0x6984):
            raise CollationBlocked(f"VERIFY 照合番号B: card answered {response.sw:04X}; the counter is at zero")
        if 0x63C1 <= response.sw <= 0x63CF:
            raise CollationMismatch(response.sw & 0xF, f"VERIFY 照合番号B: refused, {response.sw & 0xF} tries left")
        check_sw(response.sw, "VERIFY 照合番号B")
        raise ReadError(f"VERIFY 照合番号B answered {response.sw:04X}", sw=response.sw)

    def read_card_face(self) -> CardFace:
        """READ EF 0002 (after 照合番号B) and split it."""
        self.select()
        self.channel.select_file(EF_CARD_FACE)
        return split_card_face(self.channel.read_object("READ BINARY EF 0002 (card face)"))

    def read_photo_jp2(self) -> bytearray:
        """READ only the photo (DF27) of EF 0002 (after 照合番号B), walking the items by their headers.

        Why not the whole record: the face path needs the photo alone, and the name, address and
        security-code images are personal data it has no use for (about a quarter of the record,
        ~0.3 s of wire at 115200). The walk trusts only BER headers, not the DF21 offsets (their
        layout is not public). The caller zeroes the returned bytearray.
        """
        self.select()
        self.channel.select_file(EF_CARD_FACE)
        walk = _HeaderWalk(self.channel)
        try:
            tag, length, header_bytes = walk.header(0, FIRST_READ_BYTES)
            if tag != 0xFF20:
                raise tlv.TlvError(f"EF 0002 starts with tag {tag:X}, not FF20")
            position, end = header_bytes, header_bytes + length
            while position < end:
                tag, length, header_bytes = walk.header(position, HEADER_READ_BYTES)
                start = position + header_bytes
                if start + length > end:
                    raise tlv.TlvError(f"EF 0002: item {tag:X} runs past the record")
                if tag == 0xDF27:
                    return self.channel.read_range(start, length, "READ BINARY EF 0002 (photo)")
                position = start + length
            raise PhotoError("EF 0002 has no photo (DF27)")
        finally:
            walk.wipe()

    def read_card_certificate(self) -> CardVerifiableCertificate:
        self.select()
        self.channel.select_file(EF_CARD_CVC)
        return parse_cvc(self.channel.read_object("READ BINARY EF 0004 (card certificate)", limit=4096))

    def prove_genuine(self, data: bytes, issuer_keys, today: dt.date | None = None) -> GenuinenessProof:
        """Verify EF 0004 against ``issuer_keys``, have the card sign DigestInfo(SHA-256(``data``)),
        verify that too. ``data`` is what the signature must cover (the caller binds it)."""
        if not 0 < len(data) <= 2048:
            raise ValueError("the data to sign must be 1..2048 bytes")
        certificate = self.read_card_certificate()
        certificate.verify(issuer_keys, today)
        response = self.channel.send(CommandApdu(0x80, 0x2A, 0x00, 0x00, sha256_digest_info(data), le=256))
        check_sw(response.sw, "COMPUTE SIGNATURE (card genuineness)")
        _verify_rsa(certificate.public_key, response.data, data)
        return GenuinenessProof(certificate, bytes(data), response.data)


class _HeaderWalk:
    """Item headers of the current EF, read a few bytes at a time; the bytes read are zeroed after."""

    def __init__(self, channel: CardChannel):
        self.channel = channel
        self.window, self.window_at = bytearray(), 0

    def header(self, at: int, read_bytes: int) -> tuple[int, int, int]:
        """``(tag, value_length, header_length)`` of the item at offset ``at``."""
        if self.window_at <= at < self.window_at + len(self.window):
            try:
                return tlv.read_header(self.window, at - self.window_at)
            except tlv.TlvIncomplete:
                pass  # the header straddles the window's end: read it afresh
        self.wipe()
        response = self.channel.read_binary(at, read_bytes)
        if response.sw != SW_END_OF_FILE:
            check_sw(response.sw, f"READ BINARY EF 0002 at {at}")
        if not response.data:
            raise tlv.TlvError(f"EF 0002 ends at offset {at}, inside its record")
        self.window, self.window_at = bytearray(response.data), at
        return tlv.read_header(self.window)  # TlvIncomplete here: the EF ends mid-header

    def wipe(self) -> None:
        self.window[:] = bytes(len(self.window))


def _record(resolve, attempt) -> None:
    """Resolve a write-ahead record; if that write fails the record stays pending, which counts as lost."""
    try:
        resolve(attempt)
    except CollationLedgerUnavailable:
        log.error("照合番号B ledger: the try's outcome could not be recorded; it counts as a lost try")


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> None:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    try:
        key.verify(signature, digest.finalize(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    except InvalidSignature as exc:
        raise CardNotGenuine("the card's signature over the challenge does not verify with its certified key") \
            from exc
