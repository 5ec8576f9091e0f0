"""Status LED and buzzer on GPIO through gpiozero.

| feature    | supported |
|------------|-----------|
| set_status | RGBLED (PWM), steady or blinking |
| beep       | Buzzer, patterns in the background |
| pins       | ``gpiozero:R,G,B,BUZZER`` BCM numbers, default ``17,27,22,23`` |

The pin factory is gpiozero's own choice (lgpio on a Pi 5; ``GPIOZERO_PIN_FACTORY=mock`` or a
``MockFactory`` given to :func:`open_indicators` in tests), so this module never picks hardware.
"""

from __future__ import annotations

from hal.contracts import BeepPattern, Indicators, StatusColour
from hal.errors import BackendUnavailable, BadBackend, DeviceNotFound

DEFAULT_PINS = (17, 27, 22, 23)


class GpioIndicators(Indicators):
    def __init__(self, pins: tuple[int, int, int, int], pin_factory=None):
        self.pins = pins
        self.pin_factory = pin_factory
        self._led = None
        self._buzzer = None

    def start(self) -> None:
        if self._led is not None:
            return
        try:
            from gpiozero import RGBLED, Buzzer
            from gpiozero.exc import GPIOZeroError
        except ImportError as exc:
            raise BackendUnavailable("gpiozero is not installed (pip install gpiozero)") from exc
        red, green, blue, buzzer = self.pins
        try:
            self._led = RGBLED(red, green, blue, pin_factory=self.pin_factory)
            self._buzzer = Buzzer(buzzer, pin_factory=self.pin_factory)
        except GPIOZeroError as exc:
            self.close()
            raise DeviceNotFound(
                f"GPIO pins {self.pins} unavailable ({exc}); on a Pi add the user to group 'gpio', "
                "elsewhere set GPIOZERO_PIN_FACTORY=mock"
            ) from exc

    def set_status(self, colour: StatusColour, blink: bool = False) -> None:
        self.start()
        if blink:
            self._led.blink(on_time=0.5, off_time=0.5, on_color=colour.value, background=True)
        else:
            self._led.color = colour.value

    def beep(self, pattern: BeepPattern) -> None:
        self.start()
        on_s, off_s, repeats = pattern.value
        self._buzzer.beep(on_time=on_s, off_time=off_s or on_s, n=repeats, background=True)

    def close(self) -> None:
        for device in (self._led, self._buzzer):
            if device is not None:
                device.close()
        self._led = self._buzzer = None


def open_indicators(argument: str, pin_factory=None) -> GpioIndicators:
    """``gpiozero`` or ``gpiozero:R,G,B,BUZZER`` (BCM pin numbers)."""
    if not argument:
        return GpioIndicators(DEFAULT_PINS, pin_factory)
    try:
        pins = tuple(int(p) for p in argument.split(","))
    except ValueError:
        pins = ()
    if len(pins) != 4:
        raise BadBackend(f"gpiozero argument must be four BCM pins R,G,B,BUZZER (e.g. 17,27,22,23), not {argument!r}")
    return GpioIndicators(pins, pin_factory)
