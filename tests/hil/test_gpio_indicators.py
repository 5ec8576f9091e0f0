"""Status LED and buzzer through gpiozero's real device classes on its MockFactory."""

import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.contracts import BeepPattern, StatusColour
from hal.gpio.gpiozero import open_indicators

pytestmark = pytest.mark.hil


@pytest.fixture
def factory():
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.reset()
    factory.close()


def test_status_colours_drive_the_pins(factory):
    lights = open_indicators("17,27,22,23", pin_factory=factory)
    lights.start()
    lights.set_status(StatusColour.ERROR)
    assert [factory.pin(p).state for p in (17, 27, 22)] == [1.0, 0.0, 0.0]
    lights.set_status(StatusColour.OK)
    assert [factory.pin(p).state for p in (17, 27, 22)] == [0.0, 1.0, 0.0]
    lights.close()
    lights.close()


def test_beep_pattern_toggles_the_buzzer(factory):
    lights = open_indicators("", pin_factory=factory)
    lights.start()
    buzzer = factory.pin(23)
    lights.beep(BeepPattern.OK)  # (0.1 on, 0.05 off) x 2, in the background
    time.sleep(0.5)
    states = [s.state for s in buzzer.states]
    assert states.count(True) == 2, states
    lights.close()
