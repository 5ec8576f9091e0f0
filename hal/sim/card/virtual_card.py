"""The virtual My Number card on a PC: a profile directory served by :class:`CardCore`.

This is the host half: it reads the profile, gives the core its files, PINs and access rules for
the profile's token kind, does the RSA private-key operations with ``cryptography``, and writes
retry counters back to ``card.toml``. The same object is served in-process (``hal/nfc/sim.py``),
through pcscd's vpcd driver and behind the PN532 emulator; its API (``atr``, ``power_on``,
``process``) is the stable interface for those.

Design decisions where the public facts stop (see docs/notes/card-core.md):

- *face-only card* (顔認証マイナンバーカード): EF 0006 names a physical card (``JPKIAPICCTOKEN2``), but
  the JPKI AP has no PIN EF 0018 (SELECT → 6A82) and no signature certificate, key or password
  (0001/0002/001A/001B absent); the auth key 0017 exists but cannot be used without the PIN
  (6982 — only 特定機関認証, which we do not have, could). EF 000A/000B are free.
- *iPhone*: the phone unlocks the key with Face ID itself, so there is no PIN EF 0018 and COMPUTE
  SIGNATURE needs no VERIFY; EF 000A is free.
- *Android*: EF 000A and the signature need the PIN 0018 first. Phones have no 券面 APs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hal.sim.card.core import FREE, Application, CardCore, Pin
from hal.sim.card.profile import (
    AID_JPKI,
    AID_KENMEN_KAKUNIN,
    ProfileError,
    load_profile,
    read_counters,
    write_counter,
)

log = logging.getLogger(__name__)

#: PC/SC part 3 ATR of a contactless ISO 14443-4 type B card (what a PC/SC reader synthesises):
#: 3B 88 80 01, ATQB application data (4 bytes), protocol info (3 bytes), TCK.
_ATR_BODY = bytes.fromhex("3B888001" "00000000" "008171")


def pcsc_contactless_atr(body: bytes = _ATR_BODY) -> bytes:
    """Append the TCK (XOR of T0 … last historical byte) to an ATR body."""
    tck = 0
    for byte in body[1:]:
        tck ^= byte
    return body + bytes([tck])


def raw_rsa_signer(private_key_pem: bytes):
    """Return ``sign(digest_info) -> 256 bytes``: PKCS#1 v1.5 (block type 1) over caller's data.

    The card signs the DigestInfo the host gives it (P1=00), which ``cryptography``'s high-level
    API does not offer, so the padding is built here and the private operation done with the key's
    numbers (CRT). The key is loaded on first use: loading checks the key, which is slow, and most
    taps never sign.
    """
    numbers_cache: list = []

    def numbers():
        if not numbers_cache:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ProfileError("virtual card keys must be RSA")
            numbers_cache.append(key.private_numbers())
        return numbers_cache[0]

    def sign(data: bytes) -> bytes:
        key = numbers()
        n = key.public_numbers.n
        size = (n.bit_length() + 7) // 8
        padded = b"\x00\x01" + b"\xff" * (size - len(data) - 3) + b"\x00" + bytes(data)
        m = int.from_bytes(padded, "big")
        s1 = pow(m, key.dmp1, key.p)
        s2 = pow(m, key.dmq1, key.q)
        h = (key.iqmp * (s1 - s2)) % key.p
        return (s2 + h * key.q).to_bytes(size, "big")

    return sign


class VirtualCard:
    """A virtual My Number card (or phone token) loaded from a profile directory."""

    def __init__(self, profile_dir: str | os.PathLike):
        self.profile_dir = Path(profile_dir)
        profile = load_profile(self.profile_dir)
        self.kind: str = profile["kind"]
        config = profile["toml"]
        atr_hex = config.get("atr")
        self.atr: bytes = bytes.fromhex(atr_hex) if atr_hex else pcsc_contactless_atr()
        quirks = config.get("quirks", {})
        self._pins_config = config.get("pin", {})
        self._applications = self._build_applications(profile, bool(config.get("extended_apdu", True)))
        self._core = CardCore(
            self._applications.values(),
            on_counter_change=self._persist_counter,
            get_response=bool(quirks.get("get_response", False)),
            exact_le=bool(quirks.get("exact_le", False)),
        )

    def __repr__(self) -> str:  # never show PINs
        return f"VirtualCard({str(self.profile_dir)!r}, kind={self.kind!r})"

    # ------------------------------------------------------------------ stable API

    def power_on(self) -> bytes:
        """A new tap: clear security state, reload counters (another process may have spent tries)."""
        for ref, tries in read_counters(self.profile_dir).items():
            aid, _, fid = ref.partition("/")
            app = self._applications.get(aid)
            if app is not None and fid in app.pins:
                app.pins[fid].tries_left = tries
        self._core.power_on()
        return self.atr

    def process(self, apdu: bytes) -> bytes:
        """Answer one command APDU with response data followed by SW1 SW2."""
        return self._core.process(bytes(apdu))

    def tries_left(self, aid: str, fid: str) -> int:
        """The current retry counter of a PIN EF (for tests and the CLI)."""
        return self._applications[aid.upper()].pins[fid.upper()].tries_left

    # ------------------------------------------------------------------ building

    def _build_applications(self, profile: dict, extended_apdu: bool) -> dict[str, Application]:
        apps: dict[str, Application] = {}
        for aid, files in profile["files"].items():
            pins = {}
            for ref, pin in self._pins_config.items():
                pin_aid, _, fid = ref.upper().partition("/")
                if pin_aid == aid:
                    pins[fid] = Pin(str(pin["value"]).encode("ascii"), int(pin["tries_left"]),
                                    int(pin["max_tries"]))
            keys_pem = profile["keys"].get(aid, {})
            keys = {}
            for fid, pem in keys_pem.items():
                if fid == "internal":
                    continue
                keys[fid] = (self._pin_for_key(aid, fid), raw_rsa_signer(pem))
            internal = raw_rsa_signer(keys_pem["internal"]) if "internal" in keys_pem else None
            apps[aid] = Application(bytes.fromhex(aid), dict(files), self._read_rules(aid), pins, keys,
                                    internal_key=internal, extended_apdu=extended_apdu)
        return apps

    def _pin_for_key(self, aid: str, key_fid: str) -> str | None:
        if aid == AID_JPKI and key_fid == "0017":
            return None if self.kind == "iphone" else "0018"
        if aid == AID_JPKI and key_fid == "001A":
            return "001B"
        return "PIN?"  # an unknown key: never usable

    def _read_rules(self, aid: str) -> dict[str, str]:
        if aid == AID_JPKI:
            return {"000A": "0018" if self.kind == "android" else FREE, "0001": "001B"}
        if aid == AID_KENMEN_KAKUNIN:
            return {"0002": "0012", "0001": "0012"}
        return {}

    def _persist_counter(self, aid: str, fid: str, tries_left: int) -> None:
        write_counter(self.profile_dir, aid, fid, tries_left)
        log.debug("counter %s/%s now %d", aid, fid, tries_left)
