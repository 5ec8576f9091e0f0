"""Profiles for the simulated-device tests: the catalogue, made once per session (CAs cached)."""

from __future__ import annotations

import datetime as dt

import pytest

from hal.sim.card.catalogue import make_catalogue

#: The clock the catalogue's statuses hold on.
NOW = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim-cards")
    return make_catalogue(root / "cards", now=NOW, ca_dir=root / "ca")
