"""The whole kiosk over a PN532 emulator on a pty that is killed and restarted under it: out of
service while it is gone (a staff-visible problem), back to idle and reading cards when it returns.
Before, the card watcher died on the first termios.error and the kiosk showed idle for good."""

import time

import pytest

from firmware.app import Kiosk
from firmware.config import Broker, Clock, Config, Devices, Timeouts
from hal.sim.card import VirtualCard
from hal.sim.iso14443b import TypeBCard
from hal.sim.pn532_emulator import Pn532Emulator
from ui.demo import wait_for_state
from ui.patient import Patient

pytestmark = pytest.mark.hil


def test_pn532_killed_and_restarted_under_a_running_kiosk(tmp_path, make_card, mosquitto, no_thread_leaks):
    link = tmp_path / "pn532"
    info = make_card("card")
    emulators = []

    def start_emulator(card_in_field: bool):
        radio = TypeBCard(VirtualCard(info.directory))
        if not card_in_field:
            radio.remove()
        emulator = Pn532Emulator(radio, link=str(link), emulate_time=False).start()
        emulators.append(emulator)
        return emulator

    first = start_emulator(card_in_field=False)
    config = Config(data_dir=tmp_path / "var", broker=Broker(port=mosquitto.port, insecure_local=True),
                    devices=Devices(nfc=f"nfcpy:tty:{link}:pn532"), clock=Clock(source="window"),
                    timeouts=Timeouts(context_s=1))
    kiosk = Kiosk(config)
    Patient().attach(kiosk)  # answers the screens: PIN, consent
    kiosk.reader.retry_interval_s = 0.2
    states = []
    kiosk.add_listener(lambda state, session: states.append((state, session.error_kind)))
    kiosk.start()
    try:
        assert wait_for_state(kiosk, "idle", 10)
        first.close()  # the PN532 is gone (process killed, adapter pulled)
        assert wait_for_state(kiosk, "out_of_service", 15), kiosk.problems
        assert any(p.startswith("nfc:") for p in kiosk.problems)
        time.sleep(0.5)
        start_emulator(card_in_field=True)  # back on the same link, a card already on it
        assert wait_for_state(kiosk, "done", 30), (states, kiosk.problems)
        assert not any(p.startswith("nfc:") for p in kiosk.problems)
    finally:
        kiosk.stop()
        for emulator in emulators:
            emulator.close()
