"""Who sends what on the link: each topic leaf is published by the reader or by the terminal, never both.

The broker's ACL (``provisioning/broker_config.py``) is generated from this table, and a unit test
holds the kiosk's and the terminal's own subscriptions to it, so a new leaf cannot ship without the
ACL that lets it through (or keeps it out).

A reader publishes only under its own ``uketsuke/v1/{site}/{reader}/`` and reads only what the
terminal sends there, plus its own ``status`` (to notice another kiosk on its reader id). The
terminal publishes commands and answers, so a reader cannot forge a ``cmd`` (``visual_ok``) or an
``ack``, and reads what readers send.
"""

from __future__ import annotations

from typing import Literal

Sender = Literal["reader", "terminal"]

#: Topic leaf → who publishes it. ``reply`` also covers one level under it (``reply/<token>``, MQTT 5
#: response topics the kiosk honours).
SENT_BY: dict[str, Sender] = {
    "status": "reader", "event": "reader", "result": "reader", "reply": "reader",
    "challenge_request": "reader", "context_request": "reader", "registration_request": "reader",
    "ack": "terminal", "cmd": "terminal", "challenge": "terminal", "context": "terminal",
    "registration": "terminal",
}
#: Leaves with a sub-level the sender may publish under (``…/reply/<token>``).
WITH_SUBTOPIC = frozenset({"reply"})
#: What a reader reads besides the terminal's leaves: its own status (duplicate reader ids).
READER_ALSO_READS = frozenset({"status"})


def sent_by(sender: Sender) -> tuple[str, ...]:
    return tuple(leaf for leaf, who in SENT_BY.items() if who == sender)


def reader_reads() -> tuple[str, ...]:
    return sent_by("terminal") + tuple(sorted(READER_ALSO_READS))


def terminal_reads() -> tuple[str, ...]:
    return sent_by("reader")
