"""The JPKI application (公的個人認証AP): token kind, certificates, PIN, and the auth-key signature.

Facts from docs/reference/card-protocol.md. Decisions where the facts stop (docs/notes/card-core.md):

- A *face-only card* (顔認証マイナンバーカード) names itself a card in EF 0006 but has no PIN: the
  user-authentication PIN EF 0018 is absent (SELECT → 6A82). That is how it is told apart; it has
  no signature certificate either, and its auth key is unusable without 特定機関認証.
- An *iPhone* token has no PIN at the reader (Face ID on the phone gates the key): no EF 0018.
- An *Android* token needs VERIFY of EF 0018 before EF 000A can be read.
"""

from __future__ import annotations

import enum
import hashlib
import logging

from firmware.card.apdu import CardChannel, CommandApdu, FileNotFound, check_sw
from firmware.errors import CardError, NotMyNumberCard, PinBlocked, ReadError, WrongPin

log = logging.getLogger(__name__)

AID_JPKI = bytes.fromhex("D392F000260100000001")
EF_TOKEN_INFO = b"\x00\x06"
EF_AUTH_CERT = b"\x00\x0a"
EF_AUTH_CA_CERT = b"\x00\x0b"
EF_AUTH_KEY = b"\x00\x17"
EF_AUTH_PIN = b"\x00\x18"

#: DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2 note 1).
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
MAX_NONCE_BYTES = 1024


class PinFormatError(CardError, ValueError):
    """A PIN that cannot be right (not 4 ASCII digits): refused before it could spend a try."""


class NoPinOnToken(CardError, ValueError):
    """This token has no PIN at the reader (iPhone: Face ID on the phone; face-only card)."""


class TokenKind(enum.Enum):
    """What is on the reader: a physical card (with or without PIN) or a phone's JPKI applet."""

    CARD = "card"
    FACE_ONLY_CARD = "face-only"
    ANDROID = "android"
    IPHONE = "iphone"

    @property
    def is_physical_card(self) -> bool:
        return self in (TokenKind.CARD, TokenKind.FACE_ONLY_CARD)

    @property
    def has_pin(self) -> bool:
        return self in (TokenKind.CARD, TokenKind.ANDROID)

    @property
    def needs_pin_for_certificate(self) -> bool:
        return self is TokenKind.ANDROID


TOKEN_NAMES = {
    b"JPKIAPICCTOKEN2": TokenKind.CARD,
    b"JPKIAPICCTOKEN": TokenKind.CARD,  # older cards name the token without the generation digit
    b"JPKIAPGPSETOKEN": TokenKind.ANDROID,
    b"JPKIAPIOSTOKEN": TokenKind.IPHONE,
}


def sha256_digest_info(message: bytes) -> bytes:
    """DigestInfo(SHA-256(message)): what the card's raw PKCS#1 v1.5 signature covers."""
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()


def parse_token_name(token_info: bytes) -> TokenKind:
    """Token kind from EF 0006's first 32 bytes (name padded with spaces or NULs)."""
    name = bytes(token_info[:32]).rstrip(b" \x00")
    kind = TOKEN_NAMES.get(name)
    if kind is None:
        shown = name[:32].decode("ascii", "replace")
        raise NotMyNumberCard(f"EF 0006 names an unknown JPKI token {shown!r}; "
                              f"known: {', '.join(n.decode() for n in TOKEN_NAMES)}")
    return kind


def check_pin_format(pin: str | bytes | bytearray | memoryview) -> bytes:
    """The PIN as sent (ASCII digits); refuses anything but 4 digits before touching the card.

    The kiosk passes a :class:`~firmware.secrets.SecretBuffer`'s view (ASCII digits) rather than a
    ``str``; the ``bytes`` of the APDU built from it are transient (CPython cannot zero them).
    """
    if isinstance(pin, str):
        if len(pin) != 4 or not pin.isascii() or not pin.isdigit():
            raise PinFormatError("the user-authentication PIN is 4 digits (0-9)")
        return pin.encode("ascii")
    if isinstance(pin, bytes | bytearray | memoryview) and len(pin) == 4 and all(0x30 <= b <= 0x39 for b in pin):
        return bytes(pin)
    raise PinFormatError("the user-authentication PIN is 4 digits (0-9)")


class JpkiApplication:
    """Commands of the JPKI AP over a :class:`CardChannel`; selects the AP before each operation."""

    def __init__(self, channel: CardChannel):
        self.channel = channel

    def select(self) -> None:
        self.channel.select_application(AID_JPKI, "JPKI application")

    def read_token_kind(self) -> TokenKind:
        self.select()
        self.channel.select_file(EF_TOKEN_INFO)
        kind = parse_token_name(self.channel.read_fixed(32, "READ BINARY EF 0006 (token info)"))
        if kind is TokenKind.CARD:
            try:
                self.channel.select_file(EF_AUTH_PIN)
            except FileNotFound:
                kind = TokenKind.FACE_ONLY_CARD
        return kind

    def read_certificate(self, fid: bytes, what: str) -> bytes:
        self.select()
        self.channel.select_file(fid)
        return self.channel.read_object(f"READ BINARY EF {fid.hex().upper()} ({what})", limit=8192)

    def pin_tries_left(self) -> int:
        """VERIFY without data: the counter, spending no try. Raises PinBlocked at zero."""
        self.select()
        self.channel.select_file(EF_AUTH_PIN)
        response = self.channel.send(CommandApdu(0x00, 0x20, 0x00, 0x80))
        if response.sw >> 4 == 0x63C:
            tries = response.sw & 0xF
            if tries == 0:
                raise PinBlocked("the user-authentication PIN is blocked (63C0)")
            return tries
        check_sw(response.sw, "VERIFY (tries left) EF 0018")
        raise ReadError(f"VERIFY without data answered {response.sw:04X}, not 63Cx", sw=response.sw)

    def verify_pin(self, pin: str | bytes | memoryview) -> None:
        """VERIFY the user-authentication PIN; raises WrongPin(tries_left) or PinBlocked."""
        pin_bytes = check_pin_format(pin)
        self.select()
        self.channel.select_file(EF_AUTH_PIN)
        response = self.channel.send(CommandApdu(0x00, 0x20, 0x00, 0x80, pin_bytes, sensitive=True))
        check_sw(response.sw, "VERIFY user-authentication PIN")
        log.info("user-authentication PIN verified")

    def sign(self, digest_info: bytes) -> bytes:
        """COMPUTE SIGNATURE with the auth key (after VERIFY in this session, except iPhone)."""
        if not 0 < len(digest_info) <= 245:
            raise ValueError("the DigestInfo to sign must be 1..245 bytes")
        self.select()
        self.channel.select_file(EF_AUTH_KEY)
        response = self.channel.send(CommandApdu(0x80, 0x2A, 0x00, 0x80, digest_info, le=256))
        check_sw(response.sw, "COMPUTE SIGNATURE (auth key)")
        if len(response.data) != 256:
            raise ReadError(f"the card returned a {len(response.data)}-byte signature, not 256")
        return response.data


__all__ = ["JpkiApplication", "NoPinOnToken", "PinFormatError", "TokenKind", "WrongPin", "sha256_digest_info"]
