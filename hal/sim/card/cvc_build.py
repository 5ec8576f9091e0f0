"""BER-TLV encoding and the card-verifiable certificate (CVC, tag 7F21) of a virtual card's 券面 AP.

The real EF 0004 layout is not public; this encoding follows ISO 7816-8 / BSI TR-03110 CV
certificates closely enough for the firmware to exercise the same verification steps (issuer
reference → issuer key → signature over the body → card key → challenge signature)::

    7F21                          CV certificate
      7F4E                        body (the signed bytes are this whole TLV)
        5F29 01 00                profile identifier
        42   <CAR>                issuer (certification authority reference), e.g. "6000023"
        7F49                      card public key
          06 <OID>                rsaEncryption
          81 <modulus> 82 <exponent>
        5F20 <CHR>                card holder reference (card serial, ASCII)
        5F25 <YYMMDD BCD digits>  effective date
        5F24 <YYMMDD BCD digits>  expiry date
      5F37 <signature>            RSASSA-PKCS1-v1_5 with SHA-256 over the body TLV, by the issuer

The firmware parses it independently in ``firmware/card/cvc.py`` (hal never imports firmware).
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

RSA_ENCRYPTION_OID_DER = bytes.fromhex("2A864886F70D010101")  # 1.2.840.113549.1.1.1


def encode_tag(tag: int) -> bytes:
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV: tag bytes as written (e.g. 0x7F21), definite length, value."""
    return encode_tag(tag) + encode_length(len(value)) + value


def _date_digits(day: dt.date) -> bytes:
    return bytes(int(c) for c in day.strftime("%y%m%d"))


def _unsigned(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def build_cvc(*, issuer_key: rsa.RSAPrivateKey, issuer_reference: str, card_public_key: rsa.RSAPublicKey,
              holder_reference: str, effective: dt.date, expiry: dt.date) -> bytes:
    """Encode and sign one CV certificate (see the module docstring for the layout)."""
    numbers = card_public_key.public_numbers()
    public_key = tlv(0x7F49, tlv(0x06, RSA_ENCRYPTION_OID_DER) + tlv(0x81, _unsigned(numbers.n))
                     + tlv(0x82, _unsigned(numbers.e)))
    body = tlv(0x7F4E, tlv(0x5F29, b"\x00") + tlv(0x42, issuer_reference.encode("ascii")) + public_key
               + tlv(0x5F20, holder_reference.encode("ascii")) + tlv(0x5F25, _date_digits(effective))
               + tlv(0x5F24, _date_digits(expiry)))
    signature = issuer_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return tlv(0x7F21, body + tlv(0x5F37, signature))
