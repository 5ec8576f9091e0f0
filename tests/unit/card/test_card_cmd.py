"""`uketsuke card read` / `card make-profile`: output, secrets kept out, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from provisioning.card_cmd import app

runner = CliRunner()


def test_make_profile_then_read_json(tmp_path, ca_dir):
    directory = tmp_path / "android"
    made = runner.invoke(app, ["make-profile", str(directory), "--kind", "android", "--ca-dir", str(ca_dir),
                               "--pin", "4321", "--no-card-face"])
    assert made.exit_code == 0, made.output
    assert "4321" not in made.output
    result = runner.invoke(app, ["read", "--reader", f"sim:{directory}", "--json", "--pin"],
                           env={"UKETSUKE_PIN": "4321"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["token_kind"] == "android" and report["status"] == "valid"
    assert report["pin_tries_left"] == 3 and report["signature_bytes"] == 256
    assert {"token kind", "read certificate", "sign nonce"} <= set(report["timings_ms"])
    assert "4321" not in result.output


def test_read_card_with_photo_and_genuineness(profile):
    info = profile("card")
    result = runner.invoke(app, ["read", "--reader", f"sim:{info.directory}", "--json", "--photo",
                                 "--issuer-keys", str(info.directory / "issuer")],
                           env={"UKETSUKE_COLLATION_B": info.collation_b})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["photo"].startswith("240x320 greyscale")
    assert report["genuine"].startswith("yes")
    assert report["collation_b_tries_left"] == 10
    assert info.collation_b not in result.output and info.collation_b[:6] not in result.output


def test_expired_profile_and_cli_error_line(tmp_path, ca_dir):
    directory = tmp_path / "old"
    made = runner.invoke(app, ["make-profile", str(directory), "--expired", "grace", "--ca-dir", str(ca_dir),
                               "--no-card-face"])
    assert made.exit_code == 0, made.output
    report = json.loads(runner.invoke(app, ["read", "--reader", f"sim:{directory}", "--json"]).output)
    assert report["status"] == "grace"
    proc = subprocess.run([sys.executable, "-m", "provisioning.cli", "card", "read", "--reader",
                           f"sim:{tmp_path / 'nothing'}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("uketsuke: error: sim reader:")
