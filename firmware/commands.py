"""The terminal's commands to a kiosk (``cmd`` topic), run on the link's command thread.

A command never touches the flow directly: it posts an event or runs a small function on the flow
thread and waits briefly for the answer. Refusals are :class:`CommandRefused` with our own words,
never the sender's text.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout

from firmware.errors import CommandRefused
from firmware.flow.runner import FlowRunner
from firmware.link.schemas import LANGUAGES, Command, CommandName

ANSWER_WITHIN_S = 2.0

#: Commands that only post a flow event (no token: they apply to whatever visit is on screen).
#: The reply's detail says whether the flow took it (``accepted``); a flow in another state refuses quietly.
POSTED_EVENTS = {
    CommandName.VISUAL: "visual_requested",  # staff force a visual check (from choose_method, face, pin)
    CommandName.VISUAL_OK: "visual_ok",
    CommandName.VISUAL_NG: "visual_ng",
}


class CommandHandler:
    def __init__(self, runner: FlowRunner, pending_results: Callable[[], int]):
        self.runner = runner
        self.pending_results = pending_results

    def _on_flow(self, function):
        try:
            return self.runner.call(function).result(ANSWER_WITHIN_S)
        except FutureTimeout:
            raise CommandRefused("the kiosk is busy; try again") from None

    def _post(self, event: str) -> bool:
        try:
            return bool(self.runner.post(event, None).result(ANSWER_WITHIN_S))
        except FutureTimeout:
            raise CommandRefused("the kiosk is busy; try again") from None

    def __call__(self, command: Command) -> dict:
        if command.cmd == CommandName.PING:
            return {"state": self._on_flow(lambda flow: flow.state_id), "pending_results": self.pending_results()}
        if command.cmd == CommandName.CANCEL:
            return {"cancelled": self._post("cancel")}
        if command.cmd in POSTED_EVENTS:
            return {"accepted": self._post(POSTED_EVENTS[command.cmd])}
        if command.cmd == CommandName.SET_LANGUAGE:
            language = command.args.get("language")
            if language not in LANGUAGES:
                raise CommandRefused(f"language must be one of {', '.join(LANGUAGES)}")

            def switch(flow):
                flow.language = flow.session.language = language

            self._on_flow(switch)
            return {"language": language}
        raise CommandRefused(f"command {command.cmd.value} is not available in this version")
