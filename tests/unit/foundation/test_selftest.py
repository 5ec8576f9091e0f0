"""`uketsuke selftest` as a technician runs it: one table, exit 1 when something is missing."""

import os
import shutil
import subprocess
import sys

from tests.services import free_port


def run_selftest(tmp_path, config_text: str, env_extra: dict | None = None):
    config = tmp_path / "config.toml"
    config.write_text(config_text)
    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "provisioning.cli", "selftest", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_all_simulated_with_embedded_broker_passes(tmp_path):
    proc = run_selftest(tmp_path, "[broker]\nembedded = true\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in ("nfc", "face_camera", "indicators", "speaker", "broker", "face models", "OCR model"):
        assert row in proc.stdout


def test_missing_broker_and_changed_model_fail_with_the_fix(tmp_path):
    models = tmp_path / "models"
    shutil.copytree("models", models)
    (models / "onet.tflite").write_bytes(b"not a model")
    proc = run_selftest(tmp_path, f"[broker]\ninsecure_local = true\nport = {free_port()}\n",
                        {"UKETSUKE_MODELS_DIR": str(models)})
    assert proc.returncode == 1
    assert "unreachable" in proc.stdout and "mosquitto" in proc.stdout
    face_row = next(line for line in proc.stdout.splitlines() if "face models" in line)
    assert "FAIL" in face_row and "model onet" in face_row and "sha256" in face_row
    ocr_row = next(line for line in proc.stdout.splitlines() if "OCR model" in line)
    assert "ok" in ocr_row
    assert "Traceback" not in proc.stderr


def test_an_unset_clock_fails_selftest_with_the_fix(tmp_path):
    proc = run_selftest(tmp_path, '[broker]\nembedded = true\n[clock]\nsource = "window"\nnot_before = 2099-01-01\n')
    assert proc.returncode == 1
    assert "clock" in proc.stdout and "FAIL" in proc.stdout and "timedatectl set-ntp" in proc.stdout


def test_a_clock_the_os_calls_unsynchronised_fails(tmp_path):
    """A fake timedatectl first on PATH answers as systemd-timesyncd does before its first NTP reply."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "timedatectl"
    fake.write_text("#!/bin/sh\necho no\n")
    fake.chmod(0o755)
    proc = run_selftest(tmp_path, "[broker]\nembedded = true\n",
                        {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode == 1
    assert "not synchronised" in proc.stdout


def test_broker_without_tls_settings_fails_with_the_fix(tmp_path):
    proc = run_selftest(tmp_path, f"[broker]\nport = {free_port()}\n")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    broker_row = " ".join(line for line in proc.stdout.splitlines() if "TLS is required" in line or "broker" in line)
    assert "FAIL" in broker_row and "TLS is required" in broker_row
