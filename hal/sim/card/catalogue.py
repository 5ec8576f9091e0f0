"""A named set of virtual card profiles: every token kind and certificate status the check-in handles.

``make_catalogue(root)`` writes (or reuses) one profile per entry of :data:`CATALOGUE` under ``root``
and returns ``name → ProfileInfo``. The e2e tests and the desktop demo tap them on the sim reader::

    profiles = make_catalogue(tmp / "cards", now=NOW, ca_dir=tmp / "ca")
    reader.present(profiles["card-grace"].directory)

Reuse: a profile is kept when the catalogue was made for the same Japan-time day (statuses are
relative to ``now``) and its card.toml is unchanged since (a test that spent a PIN try changed its
counters: that profile is made again). Test CAs are cached in ``ca_dir``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hal.sim.card.generator import ProfileInfo, make_profile
from hal.sim.card.profile import CARD_TOML, write_toml
from hal.sim.card.throwaway_pki import JST

log = logging.getLogger(__name__)

INDEX = "catalogue.toml"
#: Bump when an entry's meaning changes, so that old catalogues are remade.
VERSION = 2


@dataclass(frozen=True)
class Entry:
    """One profile of the catalogue and what the kiosk must read from it."""

    kind: str
    cert_status: str        # what firmware.card's certificate_status must say on ``now``
    about: str
    options: dict = field(default_factory=dict)  # extra make_profile arguments


CATALOGUE: dict[str, Entry] = {
    "card-valid": Entry("card", "valid", "a card that works today"),
    "card-expiring": Entry("card", "expiring", "certificate ends in 45 days: renewal notice",
                           {"cert_state": "expiring"}),
    "card-grace": Entry("card", "grace", "certificate ended 20 days ago: eligibility only",
                        {"cert_state": "grace"}),
    "card-unusable": Entry("card", "unusable", "certificate ended 6 months ago", {"cert_state": "unusable"}),
    "card-pin-locked": Entry("card", "valid", "PIN blocked (0 tries left)", {"auth_pin_tries": 0}),
    "card-pin-one-left": Entry("card", "valid", "one PIN try left", {"auth_pin_tries": 1}),
    "card-collation-low": Entry("card", "valid", "照合番号B counter 5 (below the kiosk's minimum 6)",
                                {"collation_b_tries": 5}),
    "card-child": Entry("card", "valid", "holder aged 8: the proxy path", {"child": True}),
    "face-only-valid": Entry("face-only", "valid", "顔認証マイナンバーカード: no PIN"),
    "android-valid": Entry("android", "valid", "Android smartphone JPKI"),
    "android-expired": Entry("android", "unusable", "certificate ended 20 days ago: phones get no grace",
                             {"cert_state": "grace"}),
    "iphone-valid": Entry("iphone", "valid", "iPhone JPKI"),
    "iphone-expired": Entry("iphone", "unusable", "certificate ended 20 days ago: phones get no grace",
                            {"cert_state": "grace"}),
}

#: Age of the child card's holder on ``now``.
CHILD_AGE = 8


def _digest(directory: Path) -> str:
    return hashlib.sha256((directory / CARD_TOML).read_bytes()).hexdigest()


def _to_toml(info: ProfileInfo) -> dict:
    out = {}
    for key, value in dataclasses.asdict(info).items():
        if value is None:
            continue
        out[key] = str(value) if isinstance(value, Path | dt.date) else value
    return out


def _from_toml(table: dict) -> ProfileInfo:
    kwargs = dict(table)
    for key in ("directory", "cvc_issuer_public_pem", "card_face_png"):
        if key in kwargs:
            kwargs[key] = Path(kwargs[key])
    kwargs["auth_not_after"] = dt.datetime.fromisoformat(kwargs["auth_not_after"])
    for key in ("issued", "card_expiry", "birth_date"):
        if key in kwargs:
            kwargs[key] = dt.date.fromisoformat(kwargs[key])
    for f in dataclasses.fields(ProfileInfo):
        kwargs.setdefault(f.name, None)  # None values are not written to TOML
    return ProfileInfo(**kwargs)


def _seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


#: The synthetic person who holds every physical card of the catalogue: card-valid's, the one the
#: shipped passive liveness model scores live (0.002; most synthetic faces score as spoofs, see
#: docs/notes/sim-face-camera.md), so that any card's holder can pass the face path.
FACE_PATH_SEED = int(np.random.default_rng([_seed("card-valid"), 0xFACE]).integers(0, 2**31))


def make_catalogue(root: str | Path, now: dt.datetime | None = None, ca_dir: str | Path | None = None, *,
                   names: list[str] | None = None, card_face: bool = True) -> dict[str, ProfileInfo]:
    """Make (or reuse) the catalogue's profiles under ``root``; returns name → ProfileInfo.

    Args:
        now: the clock the statuses hold on (default: now); a catalogue made for another Japan-time
            day is made again.
        ca_dir: where the throw-away test CAs are cached (default: ``root/ca``).
        names: only these entries (default: all of :data:`CATALOGUE`).
        card_face: write ``card_face.png`` for the physical cards (the card camera shows it).
    """
    root = Path(root)
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(JST).date()
    ca = Path(ca_dir) if ca_dir is not None else root / "ca"
    wanted = list(CATALOGUE) if names is None else list(names)
    unknown = [n for n in wanted if n not in CATALOGUE]
    if unknown:
        raise KeyError(f"no catalogue profile {unknown}; known: {', '.join(CATALOGUE)}")
    index_path = root / INDEX
    index: dict = {}
    if index_path.is_file():
        index = tomllib.loads(index_path.read_text(encoding="utf-8"))
        if index.get("version") != VERSION or index.get("today") != today.isoformat() \
                or index.get("card_face") != card_face:
            index = {}
    profiles: dict = dict(index.get("profiles", {}))
    made: dict[str, ProfileInfo] = {}
    for name in wanted:
        entry = CATALOGUE[name]
        kept = profiles.get(name)
        directory = root / name
        if kept is not None and (directory / CARD_TOML).is_file() and _digest(directory) == kept["digest"]:
            made[name] = _from_toml({k: v for k, v in kept.items() if k != "digest"})
            continue
        if directory.exists():
            shutil.rmtree(directory)
        options = dict(entry.options)
        if options.pop("child", False):
            options["birth_date"] = today.replace(year=today.year - CHILD_AGE) - dt.timedelta(days=40)
        seed = _seed(name)
        if entry.kind in ("card", "face-only") and "face_seed" not in options:
            options["face_seed"] = FACE_PATH_SEED
        info = make_profile(directory, kind=entry.kind, now=now, ca_dir=ca, seed=seed,
                            card_face=card_face, **options)
        profiles[name] = {"digest": _digest(directory), **_to_toml(info)}
        made[name] = info
        log.debug("catalogue: made %s", name)
    root.mkdir(parents=True, exist_ok=True)
    write_toml(index_path, {"version": VERSION, "today": today.isoformat(), "card_face": card_face,
                            "profiles": profiles})
    return made
