"""A virtual card's profile directory: ``card.toml`` plus one file per EF.

Layout (so recorded test-card data can be dropped in)::

    DIR/card.toml                      kind, PINs and 照合番号B with retry counters, quirks, validity
    DIR/ef/<AID hex>/<FID hex>.bin     the content of each data EF, exactly as READ BINARY returns it
    DIR/keys/<AID hex>/<FID hex>.pem   private keys of key EFs (throw-away test keys, PKCS#8 PEM)
    DIR/keys/<AID hex>/internal.pem    the 券面 AP's card-genuineness key (signs without a PIN)

``card.toml`` is rewritten whole when a retry counter changes (atomically, via a temporary file),
so it holds only values this module writes: strings, integers and booleans in plain tables.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path

from hal.errors import BadBackend

log = logging.getLogger(__name__)

AID_JPKI = "D392F000260100000001"
AID_KENMEN_KAKUNIN = "D3921000310001010402"  # 券面事項確認AP (photo)
AID_KENMEN_NYURYOKU = "D3921000310001010408"  # 券面事項入力補助AP (text)

#: token kinds a profile may declare, and the name EF 0006 gives each.
TOKEN_NAMES = {
    "card": b"JPKIAPICCTOKEN2",
    "face-only": b"JPKIAPICCTOKEN2",  # a physical card: same applet, no PIN and no signature cert
    "android": b"JPKIAPGPSETOKEN",
    "iphone": b"JPKIAPIOSTOKEN",
}

CARD_TOML = "card.toml"


class ProfileError(BadBackend):
    """A virtual card profile directory is missing, incomplete or malformed."""


def load_profile(profile_dir: str | os.PathLike) -> dict:
    """Read ``card.toml`` and every EF file of a profile into plain dicts.

    Returns ``{"kind", "toml" (the parsed card.toml), "files": {aid: {fid: bytes}},
    "keys": {aid: {fid_or_"internal": pem bytes}}}``.

    Raises:
        ProfileError: the directory or card.toml is missing or malformed.
    """
    root = Path(profile_dir)
    toml_path = root / CARD_TOML
    if not toml_path.is_file():
        raise ProfileError(f"{root} is not a virtual card profile: {CARD_TOML} is missing "
                           "(make one with `uketsuke card make-profile DIR`)")
    try:
        config = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{toml_path} is not valid TOML: {exc}") from exc
    kind = config.get("kind")
    if kind not in TOKEN_NAMES:
        raise ProfileError(f"{toml_path}: kind must be one of {', '.join(TOKEN_NAMES)}, not {kind!r}")
    files: dict[str, dict[str, bytes]] = {}
    for aid_dir in sorted((root / "ef").glob("*")):
        if aid_dir.is_dir():
            files[aid_dir.name.upper()] = {
                f.stem.upper(): f.read_bytes() for f in sorted(aid_dir.glob("*.bin"))
            }
    keys: dict[str, dict[str, bytes]] = {}
    for aid_dir in sorted((root / "keys").glob("*")):
        if aid_dir.is_dir():
            keys[aid_dir.name.upper()] = {
                (f.stem if f.stem == "internal" else f.stem.upper()): f.read_bytes()
                for f in sorted(aid_dir.glob("*.pem"))
            }
    return {"kind": kind, "toml": config, "files": files, "keys": keys}


def read_counters(profile_dir: str | os.PathLike) -> dict[str, int]:
    """The retry counters in card.toml, keyed ``"<AID>/<FID>"``."""
    config = tomllib.loads((Path(profile_dir) / CARD_TOML).read_text(encoding="utf-8"))
    return {ref: int(pin["tries_left"]) for ref, pin in config.get("pin", {}).items()}


def write_counter(profile_dir: str | os.PathLike, aid: str, fid: str, tries_left: int) -> None:
    """Persist one retry counter (a real card writes EEPROM before it answers)."""
    path = Path(profile_dir) / CARD_TOML
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    ref = f"{aid}/{fid}"
    config.setdefault("pin", {}).setdefault(ref, {})["tries_left"] = int(tries_left)
    write_toml(path, config)


def write_toml(path: Path, config: dict) -> None:
    """Write ``config`` (top-level scalars, then tables of scalars, then tables of tables)."""
    lines = ["# Virtual My Number card (uketsuke). Throw-away test data: no real person, no real keys.",
             "# Retry counters are rewritten by the virtual card after every VERIFY."]
    nested: list[tuple[str, dict]] = []
    for key, value in config.items():
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, table in nested:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if scalars or not subtables:
            lines.append("")
            lines.append(f"[{_key(key)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items())
        for sub, values in subtables.items():
            lines.append("")
            lines.append(f"[{_key(key)}.{_key(sub)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in values.items())
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _key(key: str) -> str:
    if key.replace("_", "").replace("-", "").isalnum() and key.isascii():
        return key
    return _value(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"card.toml holds only str, int and bool values, not {type(value).__name__}")
