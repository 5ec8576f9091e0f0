"""The kiosk's runtime through faults, end to end over mosquitto and the simulated devices: a reader
backend that raises something unexpected, a broken LED, a card read that hangs, an outbox that
cannot be written, an unset clock, two kiosks on one reader id, touches that SDL reports twice."""

import threading
import time
from datetime import date

import pygame
import pytest
from gpiozero.exc import GPIODeviceClosed

from firmware.app import Kiosk
from firmware.config import Broker, Clock, Config, Timeouts
from hal.gpio.sim import SimIndicators
from hal.nfc.sim import SimCardReader
from hal.sim.card.generator import make_profile
from terminal.app import ReferenceTerminal
from tests.services import wait_until
from ui.demo import wait_for_state
from ui.patient import Patient
from ui.window import KioskWindow

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    return make_profile(root / "card", kind="card", ca_dir=root / "ca", seed=11, card_face=False).directory


@pytest.fixture
def config(mosquitto, tmp_path):
    return Config(data_dir=tmp_path / "var",
                  broker=Broker(port=mosquitto.port, keepalive_s=5, insecure_local=True),
                  timeouts=Timeouts(done_s=30, error_s=30, context_s=1), clock=Clock(source="window"))


@pytest.fixture
def kiosks(no_thread_leaks):
    made = []

    def make(config, reader=None, indicators=None):
        kiosk = Kiosk(config)
        if reader is not None:
            reader.spec = "sim"
            kiosk.reader = reader
        if indicators is not None:
            indicators.spec = "sim"
            kiosk.outputs.indicators = indicators
        kiosk.link.resend_min_s = 0.3
        Patient().attach(kiosk)  # answers each screen: PIN 1234, agrees, electronic prescription
        made.append(kiosk)
        return kiosk

    yield make
    for kiosk in made:
        kiosk.stop()


@pytest.fixture
def terminal(config):
    terminal = ReferenceTerminal(config.broker, site=config.site_id)
    terminal.start()
    assert terminal.wait_connected(10)
    yield terminal
    terminal.stop()



class GremlinReader(SimCardReader):
    """A sim reader whose backend raises what real drivers raise and HAL code never expected."""

    retry_interval_s = 0.05

    def __init__(self):
        super().__init__()
        self.gremlin: BaseException | None = None

    def start(self):
        if self.gremlin is not None:
            raise self.gremlin

    def wait_for_card(self, timeout_s):
        if self.gremlin is not None:
            raise self.gremlin
        return super().wait_for_card(timeout_s)


class SerialException(OSError):
    """Shaped like pyserial's: an OSError whose errno is None."""


def test_an_unexpected_backend_error_is_out_of_service_not_a_dead_watcher(config, kiosks, card):
    """Before, a non-HalError ended the watcher: 'place your card' forever, nothing for staff."""
    reader = GremlinReader()
    kiosk = kiosks(config, reader=reader)
    kiosk.start()
    assert wait_for_state(kiosk, "idle", 5)
    reader.gremlin = SerialException("device reports readiness to read but returned no data")
    assert wait_for_state(kiosk, "out_of_service", 5)
    assert any(p.startswith("nfc:") and "SerialException" in p for p in kiosk.problems)
    reader.gremlin = None
    assert wait_for_state(kiosk, "idle", 5) and kiosk.problems == []
    reader.present(card)  # and it still reads cards
    assert wait_for_state(kiosk, "done", 15)


class BrokenLed(SimIndicators):
    def set_status(self, colour, blink=False):
        raise GPIODeviceClosed("RGBLED is closed or uninitialized")


def test_a_gpiozero_error_while_running_is_reported_and_the_check_in_goes_on(config, kiosks, card, terminal):
    kiosk = kiosks(config, indicators=BrokenLed())
    kiosk.start()
    kiosk.reader.present(card)
    assert wait_for_state(kiosk, "done", 15)
    assert any(p.startswith("indicators:") for p in kiosk.problems)
    assert kiosk.indicators.spec == "sim" and not isinstance(kiosk.indicators, BrokenLed)
    assert terminal.wait_for(lambda v: len(v.results) == 1, 15)


class HangingReader(SimCardReader):
    """The first card's commands block like a hung SCardTransmit until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.hang_session: int | None = None

    def _transmit(self, session, apdu):
        if session == self.hang_session:
            self.release.wait(30)
        return super()._transmit(session, apdu)


def test_a_hung_card_read_times_out_and_blocks_neither_the_next_tap_nor_stop(mosquitto, tmp_path, kiosks, card):
    config = Config(data_dir=tmp_path / "var", broker=Broker(port=mosquitto.port, insecure_local=True),
                    timeouts=Timeouts(card_read_s=0.5, error_s=30), clock=Clock(source="window"))
    reader = HangingReader()
    kiosk = kiosks(config, reader=reader)
    kiosk.start()
    try:
        reader.present(card)
        reader.hang_session = reader._session
        assert wait_for_state(kiosk, "failed", 10)
        assert kiosk.flow.session.error_kind == "LinkTimeout"
        reader.remove()
        assert wait_for_state(kiosk, "idle", 5)
        reader.present(card)  # a new tap gets a new worker
        assert wait_for_state(kiosk, "done", 15)
        reader.remove()
        started = time.monotonic()
        kiosk.stop()
        assert time.monotonic() - started < 8
    finally:
        reader.release.set()  # let the abandoned worker finish, for the thread-leak check


def test_an_unwritable_outbox_is_a_visible_error_and_nothing_is_lost(config, kiosks, card, terminal):
    kiosk = kiosks(config)
    kiosk.link.write_retry_min_s = 0.2
    kiosk.outbox._db.execute("PRAGMA query_only=1")  # as a read-only or full SD card answers
    kiosk.start()
    kiosk.reader.present(card)
    assert wait_for_state(kiosk, "out_of_service", 15)  # screen: ask at reception
    assert any(p.startswith("outbox-write:") for p in kiosk.problems)
    assert terminal.wait_for(lambda v: any("outbox-write" in " ".join(p) for p in v.problems.values()), 10)
    assert terminal.wait_for(lambda v: len(v.results) == 1, 15)  # delivered from memory meanwhile
    kiosk.outbox._db.execute("PRAGMA query_only=0")
    assert wait_until(lambda: not any(p.startswith("outbox-write:") for p in kiosk.problems), 40)
    kiosk.reader.remove()
    assert wait_for_state(kiosk, "idle", 10)


def test_an_unset_clock_puts_the_kiosk_out_of_service(mosquitto, tmp_path, kiosks, card):
    config = Config(data_dir=tmp_path / "var", broker=Broker(port=mosquitto.port, insecure_local=True),
                    clock=Clock(source="window", not_before=date(2099, 1, 1)))
    kiosk = kiosks(config)
    kiosk.start()
    assert wait_for_state(kiosk, "out_of_service", 5)
    assert any(p.startswith("clock:") for p in kiosk.problems)
    kiosk.reader.present(card)
    time.sleep(0.5)
    assert kiosk.flow.state_id == "out_of_service"  # no certificate is judged by a wrong clock


def test_two_kiosks_with_one_reader_id_say_so_on_screen_and_status(config, tmp_path, kiosks, terminal):
    first = kiosks(config)
    second = kiosks(config.model_copy(update={"data_dir": tmp_path / "var2"}))
    first.start()
    assert first.link.wait_connected(10)
    second.start()
    assert wait_until(lambda: all(any(p.startswith("reader-id:") for p in k.problems) for k in (first, second)))
    assert first.link.connected and second.link.connected
    window = KioskWindow(first)
    try:
        plain = pygame.Surface((800, 480))
        from ui.screens import ScreenView

        window.renderer.render(plain, ScreenView(state="idle"))
        window.draw()
        assert pygame.image.tobytes(window.surface, "RGB") != pygame.image.tobytes(plain, "RGB")
    finally:
        window.close()
    assert terminal.wait_for(lambda v: any("reader-id" in " ".join(p) for p in v.problems.values()), 10)


def test_a_touch_and_its_synthesised_mouse_click_count_once(config, kiosks):
    """SDL also sends a MOUSEBUTTONDOWN with touch=True for each touch: the language toggled back."""
    kiosk = kiosks(config)
    kiosk.start()
    window = KioskWindow(kiosk)
    try:
        window.draw()
        (button,) = [b for b in window.renderer.buttons if b.event == "language"]
        x, y = button.rect.center
        pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, x=x / 800, y=y / 480, touch_id=0, finger_id=0))
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(x, y), button=1, touch=True))
        window.run(max_frames=2)
        kiosk.runner.call(lambda flow: None).result(5)
        assert kiosk.flow.language == "en"
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(x, y), button=1, touch=False))
        window.run(max_frames=2)  # a real mouse (a technician's) still works
        kiosk.runner.call(lambda flow: None).result(5)
        assert kiosk.flow.language == "ja"
    finally:
        window.close()


def test_a_touch_meant_for_a_screen_that_is_gone_does_nothing(config, kiosks, card):
    kiosk = kiosks(config)
    kiosk.start()
    window = KioskWindow(kiosk)
    try:
        kiosk.reader.present(card)
        assert wait_for_state(kiosk, "done", 15)
        window.draw()  # the done screen with its cancel button
        kiosk.reader.remove()
        assert wait_for_state(kiosk, "idle", 5)
        kiosk.reader.present(card)  # a new visit before the finger lands
        assert wait_for_state(kiosk, "done", 15)
        window.touch("cancel")  # for the old screen: dropped
        kiosk.runner.call(lambda flow: None).result(5)
        assert kiosk.flow.state_id == "done"
    finally:
        window.close()
