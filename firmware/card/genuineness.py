"""What the card's 券面AP signs on the face path: the terminal's nonce bound to the tap's certificate.

The card signs whatever DigestInfo the reader gives it (``80 2A 00 00``), so the kiosk chooses the
data. Signing the bare nonce (the form of before) proves only that *some* genuine card answered;
nothing tied it to the user-authentication certificate in the same result, so a result could carry
card A's certificate and card B's genuineness proof. The data signed now is::

    DOMAIN || len(nonce) (2 bytes, big-endian) || nonce || SHA-256(certificate DER)

and the card signs DigestInfo(SHA-256(that)). The terminal rebuilds it from the result's own
``nonce_b64`` and ``cert_der_b64``: a proof taken from another tap, another result or another
certificate does not verify. The domain tag keeps this signature from being mistaken for one over a
bare nonce of another protocol, and its ``v1`` names the form (a later form gets a new tag).

What it cannot stop: a relay device in front of an honest kiosk that answers the JPKI AP with card
A's certificate (readable without a PIN, so it may even be replayed from a file) and forwards the
券面AP to card B. The kiosk then asks card B to sign over A's certificate, and B does; real cards
offer no link between their two APs that a reader without the PIN (or 特定機関認証) can check
(docs/notes/proofs.md).
"""

from __future__ import annotations

import hashlib

DOMAIN = b"uketsuke card genuineness v1\x00"
MAX_NONCE_BYTES = 1024


def genuineness_data(nonce: bytes, cert_der: bytes) -> bytes:
    """The bytes whose SHA-256 DigestInfo the card signs (see the module docstring)."""
    if not 0 < len(nonce) <= MAX_NONCE_BYTES:
        raise ValueError(f"the nonce must be 1..{MAX_NONCE_BYTES} bytes")
    if not cert_der:
        raise ValueError("the certificate to bind is empty")
    return DOMAIN + len(nonce).to_bytes(2, "big") + bytes(nonce) + hashlib.sha256(bytes(cert_der)).digest()
