"""Simulated status LED and buzzer that remember what they showed.

| feature    | supported |
|------------|-----------|
| set_status | yes, recorded in ``history`` as ("status", colour, blink) |
| beep       | yes, recorded in ``history`` as ("beep", pattern) |
"""

from __future__ import annotations

from hal.contracts import BeepPattern, Indicators, StatusColour


class SimIndicators(Indicators):
    def __init__(self):
        self.history: list[tuple] = []
        self.colour = StatusColour.OFF
        self.blinking = False

    def set_status(self, colour: StatusColour, blink: bool = False) -> None:
        self.colour, self.blinking = colour, blink
        self.history.append(("status", colour, blink))

    def beep(self, pattern: BeepPattern) -> None:
        self.history.append(("beep", pattern))

    def close(self) -> None:
        self.colour, self.blinking = StatusColour.OFF, False


def open_indicators(argument: str) -> SimIndicators:
    return SimIndicators()
