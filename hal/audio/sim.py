"""Simulated speaker: remembers clips and sentences instead of sounding them.

| feature | supported |
|---------|-----------|
| play    | recorded in ``history`` as ("play", clip) |
| say     | recorded in ``history`` as ("say", Utterance) |
"""

from __future__ import annotations

from hal.contracts import Speaker, Utterance


class SimSpeaker(Speaker):
    def __init__(self):
        self.history: list[tuple] = []

    def play(self, clip: str) -> None:
        self.history.append(("play", clip))

    def say(self, utterance: Utterance) -> None:
        self.history.append(("say", utterance))


def open_speaker(argument: str) -> SimSpeaker:
    return SimSpeaker()
