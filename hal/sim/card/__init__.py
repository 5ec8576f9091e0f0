"""The virtual My Number card: profile directories (:mod:`.profile`), the APDU state machine
(:mod:`.core`, MicroPython-friendly), the PC host (:class:`VirtualCard`) and the profile
generator (:mod:`.generator`).

Stable API for every server of the card (in-process, vpcd, PN532 emulator)::

    card = VirtualCard("cards/alice")
    atr = card.power_on()          # a new tap: security state cleared, counters reloaded
    response = card.process(apdu)  # response data + SW1 SW2
"""

from hal.sim.card.virtual_card import VirtualCard

__all__ = ["VirtualCard"]
