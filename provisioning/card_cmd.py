"""`uketsuke card …` commands: read a card through any reader backend, make virtual cards.

``card read --reader SPEC`` runs the same card code the kiosk runs (``firmware.card.mynumber``) over
the reader the selection string names (``sim:DIR``, ``pcsc:NAME``, ``nfcpy:PATH``) and prints what a
technician needs — never the 12-digit number, a PIN or 照合番号B. ``card make-profile DIR`` writes a
virtual card. ``card serve`` and ``card ocr-eval`` live in their own modules and are mounted here.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from firmware.card.collation import CollationB, CollationPolicy
from firmware.card.collation_ledger import CollationLedger
from firmware.card.cvc import load_issuer_keys
from firmware.card.mynumber import MyNumberCard
from firmware.errors import SecurityStatusNotSatisfied
from hal.errors import LinkTimeout
from hal.registry import open_device

app = typer.Typer(no_args_is_help=True)
console = Console()

try:
    from provisioning.card_serve_cmd import register as _register_serve
except ImportError:  # card-transport's module not installed in this build
    _register_serve = None
try:
    from provisioning.card_ocr_cmd import register as _register_ocr
except ImportError:  # the OCR helper's module not installed in this build
    _register_ocr = None
for _register in (_register_serve, _register_ocr):
    if _register is not None:
        _register(app)


class Kind(enum.StrEnum):
    card = "card"
    face_only = "face-only"
    android = "android"
    iphone = "iphone"


class Expired(enum.StrEnum):
    no = "no"
    expiring = "expiring"
    grace = "grace"
    unusable = "unusable"


class _Steps:
    """Times each step of a read, in milliseconds."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def run(self, name: str, action):
        start = time.perf_counter()
        try:
            return action()
        finally:
            self.ms[name] = round((time.perf_counter() - start) * 1000, 1)


def _secret(env: str, prompt: str) -> str:
    return os.environ.get(env) or typer.prompt(prompt, hide_input=True)


@app.command("read")
def read_command(
    reader: Annotated[str, typer.Option("--reader", help="reader selection string: sim:DIR, pcsc:NAME, "
                                        "nfcpy:PATH")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    wait_s: Annotated[float, typer.Option("--wait", help="seconds to wait for a card")] = 10.0,
    pin: Annotated[bool, typer.Option("--pin", help="VERIFY the PIN (asked hidden, or $UKETSUKE_PIN) "
                                      "and sign a test nonce")] = False,
    photo: Annotated[bool, typer.Option("--photo", help="open the 券面事項確認AP with 照合番号B (asked hidden, "
                                        "or $UKETSUKE_COLLATION_B) and decode the photo")] = False,
    issuer_keys: Annotated[Path | None, typer.Option("--issuer-keys", help="folder of trusted CVC issuer "
                                                     "keys <CAR>.pem: check the card is genuine")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="the kiosk's data_dir: its 照合番号B ledger "
                                           "(a card that lost a try here is not tried again)")] = Path("var"),
) -> None:
    """Read a card: token kind, certificate, status, PIN tries, (photo size), and each step's time."""
    steps = _Steps()
    device = open_device("nfc", reader)
    device.start()
    try:
        link = steps.run("wait for card", lambda: device.wait_for_card(wait_s))
        if link is None:
            raise LinkTimeout(f"no card came into the field of {reader} within {wait_s:g} s")
        policy = CollationPolicy(CollationLedger(data_dir)) if photo else None
        card = MyNumberCard(link, collation_policy=policy)
        report = _read(card, steps, pin=pin, photo=photo, issuer_keys=issuer_keys)
        link.close()
    finally:
        device.close()
    report["timings_ms"] = steps.ms
    report["reader"] = reader
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    table = Table(title="card read", show_header=False)
    for key, value in report.items():
        if key == "timings_ms":
            value = ", ".join(f"{k} {v:.1f}" for k, v in value.items())
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)


def _read(card: MyNumberCard, steps: _Steps, *, pin: bool, photo: bool, issuer_keys: Path | None) -> dict:
    now = dt.datetime.now(dt.UTC)
    kind = steps.run("token kind", card.read_token_kind)
    report: dict = {"token_kind": kind.value}
    tries = steps.run("PIN tries left", card.pin_tries_left)
    report["pin_tries_left"] = tries if tries is not None else "no PIN on this token"
    if pin and kind.has_pin:
        steps.run("VERIFY PIN", lambda: card.verify_pin(_secret("UKETSUKE_PIN", "PIN")))
    try:
        certificate = steps.run("read certificate", card.read_auth_certificate)
    except SecurityStatusNotSatisfied:
        report["certificate"] = "needs the PIN first (use --pin)"
        certificate = None
    if certificate is not None:
        report.update(subject=certificate.subject, issuer=certificate.issuer, serial=certificate.serial_hex,
                      not_before=certificate.not_before.isoformat(), not_after=certificate.not_after.isoformat(),
                      status=certificate.status_at(now, kind).value)
        if pin and (kind.has_pin or kind.value == "iphone"):
            signature = steps.run("sign nonce", lambda: card.sign_nonce(os.urandom(32)))
            report["signature_bytes"] = len(signature)
    if kind.is_physical_card:
        report["collation_b_tries_left"] = steps.run("照合番号B tries left", card.collation_b_tries_left)
        if photo:
            digits = _secret("UKETSUKE_COLLATION_B", "照合番号B (14 digits)").strip()
            collation = CollationB(digits[:6], digits[6:10], digits[10:], confident=len(digits) == 14)
            steps.run("VERIFY 照合番号B", lambda: card.verify_collation_b(collation))
            face = steps.run("read card face", card.read_card_face)
            grey = steps.run("decode photo", face.photo_greyscale)
            report["photo"] = f"{grey.shape[1]}x{grey.shape[0]} greyscale, {len(face.photo_jp2)} bytes JPEG 2000"
            grey[...] = 0
            face.wipe()
        if issuer_keys is not None:
            keys = load_issuer_keys(issuer_keys)
            proof = steps.run("card genuineness", lambda: card.prove_genuine(os.urandom(32), keys))
            report["genuine"] = f"yes (issuer {proof.card_certificate.issuer_reference})"
    return report


@app.command("make-profile")
def make_profile_command(
    directory: Annotated[Path, typer.Argument(help="new profile directory (must not hold a card.toml)")],
    kind: Annotated[Kind, typer.Option("--kind", help="token kind")] = Kind.card,
    expired: Annotated[Expired, typer.Option("--expired", help="where the auth certificate stands today")]
    = Expired.no,
    pin: Annotated[str, typer.Option("--pin", help="the 4-digit user-authentication PIN (test data)")] = "1234",
    ca_dir: Annotated[Path | None, typer.Option("--ca-dir", help="cache the throw-away test CA keys here")]
    = None,
    face: Annotated[Path | None, typer.Option("--face", help="face image for the card photo (default: a "
                                              "face drawn in code)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed for the card face and drawn photo")] = None,
    card_face: Annotated[bool, typer.Option("--card-face/--no-card-face", help="render card_face.png "
                                            "(needs hal.sim.card_face)")] = True,
) -> None:
    """Write a virtual My Number card (or phone token) profile from a throw-away test CA."""
    import numpy as np
    from PIL import Image

    from hal.sim.card.generator import make_profile

    face_image = None
    if face is not None:
        with Image.open(face) as image:
            face_image = np.asarray(image.convert("RGB"))
    state = {"no": "valid"}.get(expired.value, expired.value)
    info = make_profile(directory, kind=kind.value, cert_state=state, pin=pin, ca_dir=ca_dir,
                        face_image=face_image, seed=seed, card_face=card_face)
    console.print(f"wrote {info.kind} profile {info.directory} (auth certificate until "
                  f"{info.auth_not_after.isoformat()}; secrets are in card.toml)")
    if info.card_face_png is None and info.kind in ("card", "face-only") and card_face:
        console.print("no card_face.png: hal.sim.card_face (the card-face renderer) is not available")
