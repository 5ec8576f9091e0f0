"""Fixtures shared by the link tests: a reference terminal on the test's mosquitto."""

import pytest

from firmware.config import Broker
from terminal.app import ReferenceTerminal


@pytest.fixture
def terminal_factory():
    """``terminal_factory(port, name="listen")``: a connected terminal for site s1, stopped at the end."""
    terminals = []

    def make(port, name="listen"):
        terminal = ReferenceTerminal(Broker(port=port, keepalive_s=5, insecure_local=True), site="s1",
                                     name=name)
        terminal.start()
        assert terminal.wait_connected(10)
        terminals.append(terminal)
        return terminal

    yield make
    for terminal in terminals:
        terminal.stop()
