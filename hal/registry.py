"""Choosing a backend with one string, spelt the same in config.toml, the environment and the CLI.

A selection string is ``kind[:argument]``; the argument is passed whole to the backend's factory, so
``nfcpy:tty:S0:pn532`` gives the nfcpy backend the path ``tty:S0:pn532`` (nfcpy's own syntax) and
``pcsc:Virtual PCD 00 00`` gives the PC/SC backend a reader name. This is the one registry
(``name → "module:factory"``); backends are imported only when chosen, so a laptop without picamera2
or pyscard still runs everything else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from hal.errors import BackendUnavailable, BadBackend

#: device role → backend kind → "module:factory". A factory takes (argument: str) and returns a Device.
BACKENDS: dict[str, dict[str, str]] = {
    "nfc": {
        "sim": "hal.nfc.sim:open_reader",
        "pcsc": "hal.nfc.pcsc:open_reader",
        "nfcpy": "hal.nfc.nfcpy:open_reader",
    },
    "camera": {
        "sim": "hal.camera.sim:open_camera",
        "replay": "hal.camera.replay:open_camera",
        "opencv": "hal.camera.opencv:open_camera",
        "picamera2": "hal.camera.picamera2:open_camera",
    },
    "indicators": {
        "sim": "hal.gpio.sim:open_indicators",
        "gpiozero": "hal.gpio.gpiozero:open_indicators",
    },
    "speaker": {
        "sim": "hal.audio.sim:open_speaker",
        "espeak": "hal.audio.tts:open_speaker",
    },
}


@dataclass(frozen=True)
class BackendSpec:
    """A parsed selection string."""

    role: str
    kind: str
    argument: str

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.argument}" if self.argument else self.kind


def parse_spec(role: str, text: str) -> BackendSpec:
    """Split ``kind[:argument]`` and check the kind exists for ``role``.

    Raises:
        BadBackend: unknown role or kind; the message lists what is allowed.
    """
    if role not in BACKENDS:
        raise BadBackend(f"unknown device role {role!r}; allowed: {', '.join(sorted(BACKENDS))}")
    kind, _, argument = text.strip().partition(":")
    allowed = BACKENDS[role]
    if kind not in allowed:
        raise BadBackend(
            f"{role} backend must be one of {', '.join(f'{k!r}' for k in allowed)} "
            f"(optionally followed by ':<argument>'), not {text!r}"
        )
    return BackendSpec(role, kind, argument)


def open_device(role: str, text: str):
    """Build (but do not start) the device named by selection string ``text`` for ``role``.

    Raises:
        BadBackend: the string names no backend, or the backend rejected its argument.
        BackendUnavailable: the backend's package is not installed (message says which).
    """
    spec = parse_spec(role, text)
    module_name, _, factory_name = BACKENDS[role][spec.kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(module_name):
            raise BadBackend(f"{role} backend {spec.kind!r} is not built into this version") from exc
        raise BackendUnavailable(
            f"{role} backend {spec.kind!r} needs the Python package {exc.name!r}, which is not installed"
            f" (on a Raspberry Pi: pip install 'uketsuke[pi]' or apt install python3-{exc.name})"
        ) from exc
    device = getattr(module, factory_name)(spec.argument)
    device.spec = spec.text
    return device
