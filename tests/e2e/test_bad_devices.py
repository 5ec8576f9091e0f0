"""A missing device never stops the kiosk: it says so on screen and keeps running where it can."""

import subprocess
import sys
import time

import pytest

from firmware.app import Kiosk
from firmware.config import Broker, Config, Devices
from hal.nfc.sim import SimCardReader
from ui.demo import wait_for_state

pytestmark = pytest.mark.e2e


class FlakyReader(SimCardReader):
    """A sim reader that can be unplugged: wait_for_card raises DeviceNotFound while unplugged."""

    retry_interval_s = 0.05

    def __init__(self):
        super().__init__()
        self.plugged = True

    def start(self):
        from hal.errors import DeviceNotFound

        if not self.plugged:
            raise DeviceNotFound("reader unplugged")

    def wait_for_card(self, timeout_s):
        self.start()
        return super().wait_for_card(timeout_s)


def test_reader_lost_and_back(tmp_path):
    config = Config(data_dir=tmp_path, broker=Broker(port=1, insecure_local=True))  # no broker: still runs
    kiosk = Kiosk(config)
    kiosk.reader = reader = FlakyReader()
    reader.spec = "sim"
    kiosk.start()
    try:
        assert wait_for_state(kiosk, "idle", 5)
        reader.plugged = False
        assert wait_for_state(kiosk, "out_of_service", 5)
        assert any("reader unplugged" in p for p in kiosk.problems)
        reader.plugged = True
        assert wait_for_state(kiosk, "idle", 5)
        assert kiosk.problems == []
    finally:
        kiosk.stop()


def test_missing_indicators_are_replaced_and_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    config = Config(data_dir=tmp_path, broker=Broker(port=1, insecure_local=True),
                    devices=Devices(indicators="gpiozero"))
    kiosk = Kiosk(config)
    kiosk.start()
    try:
        assert kiosk.indicators.spec == "sim"
        assert kiosk.problems and kiosk.problems[0].startswith("indicators:")
        assert kiosk.flow.state_id == "idle"
    finally:
        kiosk.stop()


def test_missing_pcsc_reader_is_out_of_service_not_a_crash(tmp_path):
    """pcsc backend with no pcscd for it: the kiosk starts, shows out-of-service, no traceback."""
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[devices]\nnfc = "pcsc:No Such Reader 99"\n'
                      '[broker]\ninsecure_local = true\nport = 1\n')
    code = (
        "import sys, time\n"
        "from firmware.app import Kiosk\nfrom firmware.config import load_config\n"
        f"k = Kiosk(load_config({str(config)!r})); k.start()\n"
        "deadline = time.monotonic() + 10\n"
        "while k.flow.state_id != 'out_of_service' and time.monotonic() < deadline: time.sleep(0.05)\n"
        "print(k.flow.state_id, k.problems); k.stop()\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("out_of_service"), proc.stdout + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60
