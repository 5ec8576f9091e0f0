"""The outside check, as a reviewer runs it: `uketsuke run --headless --checkins N --config FILE` and
`uketsuke terminal listen --count N --json --config FILE` against a real mosquitto, in either order,
the terminal started late; and `--demo` with a production config, which must leave it alone."""

import json
import os
import subprocess
import sys
import time

import pytest

from firmware.link.outbox import Outbox
from firmware.link.schemas import Method, ResultMessage, topic

pytestmark = pytest.mark.e2e

N = 3


def uketsuke(*args, cwd):
    env = {**os.environ, "HEADLESS": "1", "SDL_VIDEODRIVER": "dummy"}
    env.pop("DISPLAY", None)
    return subprocess.Popen([sys.executable, "-m", "provisioning.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout_s=180):
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"did not finish: {err[-3000:]}") from None
    return process.returncode, out, err


def last_json(out: str) -> dict:
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


@pytest.fixture
def config_file(mosquitto, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'site_id = "clinic-7"\nreader_id = "front-desk"\ndata_dir = "{tmp_path / "var"}"\n'
                    f'[broker]\ninsecure_local = true\nport = {mosquitto.port}\n[clock]\nsource = "window"\n')
    return path


@pytest.mark.parametrize("order", ["terminal-first", "kiosk-first-terminal-late"])
def test_n_checkins_all_acknowledged_in_either_order(config_file, tmp_path, order):
    listen = ("terminal", "listen", "--count", str(N), "--json", "--config", str(config_file), "--name", order)
    run = ("run", "--headless", "--checkins", str(N), "--config", str(config_file))
    if order == "terminal-first":
        terminal = uketsuke(*listen, cwd=tmp_path)
        time.sleep(2)
        kiosk = uketsuke(*run, cwd=tmp_path)
    else:
        kiosk = uketsuke(*run, cwd=tmp_path)
        time.sleep(8)  # the kiosk has played its check-ins to nobody
        terminal = uketsuke(*listen, cwd=tmp_path)
    code, out, err = finish(kiosk)
    assert code == 0, err[-3000:]
    assert last_json(out) == {"checkins": N, "acknowledged": N, "pending": 0}
    code, out, err = finish(terminal)
    assert code == 0, err[-3000:]
    assert last_json(out) == {"checkins": N, "acknowledged": N, "pending": 0}
    assert "Traceback" not in err


def test_demo_with_a_production_config_leaves_its_data_and_ids_alone(mosquitto, tmp_path):
    """Before, --demo flushed the production outbox into its own broker (acked, deleted) and
    published a fake result under the production site and reader ids."""
    data = tmp_path / "production-var"
    pending = ResultMessage(site="clinic-7", reader="front-desk", method=Method.NONE, card_kind="card",
                            cert_der_b64="MAM=", cert_status="valid")
    outbox = Outbox(data / "outbox.sqlite3")
    outbox.put(pending.id, topic("clinic-7", "front-desk", "result"), pending.to_json())
    outbox.close()
    before = (data / "outbox.sqlite3").read_bytes()
    config = tmp_path / "config.toml"
    config.write_text(f'site_id = "clinic-7"\nreader_id = "front-desk"\ndata_dir = "{data}"\n'
                      f'[broker]\ninsecure_local = true\nport = {mosquitto.port}\n')
    code, out, err = finish(uketsuke("run", "--demo", "--headless", "--config", str(config), "--scenario", "pin",
                                     "--screenshots", str(tmp_path / "s"), cwd=tmp_path))
    assert code == 0, err[-3000:]
    assert "clinic-7" not in err and "front-desk" not in err
    assert "terminal: [demo-clinic/demo-reader] pin card cert=valid" in err  # the demo patient uses the PIN
    assert (data / "outbox.sqlite3").read_bytes() == before
    again = Outbox(data / "outbox.sqlite3")
    assert [p.id for p in again.pending()] == [pending.id]
    again.close()
    assert sorted(p.name for p in data.iterdir()) == ["outbox.sqlite3"]  # no demo cards, no demo files


def test_checkins_need_the_simulated_reader(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[devices]\nnfc = "pcsc:No Such Reader"\n'
                      '[broker]\ninsecure_local = true\nport = 1\n'
                      '[clock]\nsource = "window"\n')
    code, out, err = finish(uketsuke("run", "--headless", "--checkins", "1", "--config", str(config), cwd=tmp_path))
    assert code == 1 and "Traceback" not in err
