import subprocess
import sys

import pytest

from firmware.config import Config, load_config, parse_config
from firmware.errors import ConfigError


def test_defaults_are_all_simulated():
    config = Config()
    assert config.devices.nfc == "sim" and config.devices.face_camera == "sim"
    assert config.card.min_collation_tries_left == 6


def test_example_config_is_valid(tmp_path):
    config = load_config("config.example.toml")
    assert config.site_id == "demo-clinic"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"langauge": "ja"}, "unknown key 'langauge'"),
        ({"language": "fr"}, "language must be one of 'ja', 'en'"),
        ({"devices": {"nfc": "usb:0"}}, "devices.nfc: nfc backend must be one of 'sim', 'pcsc', 'nfcpy'"),
        ({"devices": {"face_camera": "webcam"}}, "face_camera"),
        ({"broker": {"port": 70000}}, "broker.port"),
        ({"site_id": "has space"}, "site_id"),
        ({"timeouts": {"pin_s": -1}}, "timeouts.pin_s"),
        ({"card": {"min_collation_tries_left": 0}}, "card.min_collation_tries_left"),
    ],
)
def test_wrong_key_or_value_names_the_key(data, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("site_id = [unterminated")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_cli_prints_one_line_and_exits_2(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text('language = "fr"\n')
    proc = subprocess.run([sys.executable, "-m", "provisioning.cli", "selftest", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("uketsuke: error: ") and "language must be one of" in lines[0]
    assert "Traceback" not in proc.stderr


def test_an_empty_broker_host_is_a_config_error_not_a_traceback():
    from firmware.config import parse_config
    from firmware.errors import ConfigError

    with pytest.raises(ConfigError, match="broker.host"):
        parse_config({"broker": {"host": ""}})


def test_terminal_rejects_an_unknown_protocol_with_usage_not_a_traceback():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "provisioning.cli", "terminal", "listen", "--protocol", "4"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'5'" in proc.stderr and "'3.1.1'" in proc.stderr
