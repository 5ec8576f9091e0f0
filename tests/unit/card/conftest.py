"""Virtual cards for the card-layer tests: one generated profile per token kind, copied per test.

Generating a profile costs a few RSA keys, so each kind is generated once per session (test CAs
cached in a session folder) and every test gets its own copy: retry counters a test spends never
leak into another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import pytest

from hal.nfc.sim import SimCardReader
from hal.sim.card.generator import make_profile
from hal.sim.card.throwaway_pki import JST

#: The clock every generated profile and every status check in these tests is set against.
NOW = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
TODAY_JST = NOW.astimezone(JST).date()


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("test-ca")


@pytest.fixture(scope="session")
def templates(tmp_path_factory, ca_dir):
    """kind → ProfileInfo of a pristine generated profile (never used directly by tests)."""
    root = tmp_path_factory.mktemp("templates")
    made = {}
    for kind in ("card", "face-only", "android", "iphone"):
        made[kind] = make_profile(root / kind, kind=kind, now=NOW, ca_dir=ca_dir, seed=7, card_face=False)
    return made


@pytest.fixture
def profile(templates, tmp_path):
    """``profile(kind)`` → ProfileInfo of a private copy of that kind's profile."""

    def copy(kind: str = "card"):
        info = templates[kind]
        target = tmp_path / kind
        shutil.copytree(info.directory, target)
        return dataclasses.replace(info, directory=target,
                                   cvc_issuer_public_pem=target / "issuer" / info.cvc_issuer_public_pem.name)

    return copy


@pytest.fixture
def reader_for():
    """``reader_for(info)`` → a sim reader with that profile's card in the field."""
    readers = []

    def make(info, **options):
        reader = SimCardReader(info.directory, **options)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


@pytest.fixture
def kiosk_dir(tmp_path):
    """The kiosk's data_dir for a test (holds the 照合番号B ledger)."""
    return tmp_path / "kiosk-data"


@pytest.fixture
def policy(kiosk_dir):
    """``policy(min_tries_left=6)`` → a CollationPolicy over a ledger (re-opened) in ``kiosk_dir``."""
    from firmware.card.collation import DEFAULT_MIN_TRIES_LEFT, CollationPolicy
    from firmware.card.collation_ledger import CollationLedger

    def make(min_tries_left: int = DEFAULT_MIN_TRIES_LEFT):
        return CollationPolicy(CollationLedger(kiosk_dir), min_tries_left)

    return make
