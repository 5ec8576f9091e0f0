"""Simulated devices' insides: the virtual My Number card, its profiles, and the emulators that
serve it through real stacks (pcscd's vpcd driver, a PN532 on a pseudo-terminal).

The virtual card's core logic is written in a MicroPython-friendly subset (plain classes, bytes,
dicts; no dataclasses, typing tricks or f-string debugging in the APDU state machine) so it could run
on a microcontroller that plays a card in a bench rig.
"""
