"""Fixtures for card HIL tests: a real pcscd with the vpcd driver, and the PN532 emulator on a pty.

Only one pcscd can run on a machine (fixed socket ``/run/pcscd/pcscd.comm``). We start ours with a
private reader configuration and stop it by PID; if another pcscd already runs, we use it when it
offers the vpcd readers and otherwise skip with the reason. Missing pcscd/vpcd: skip on a developer
machine, *fail* in CI (``CI=true``), where ``.ci/run`` installs them.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from hal.sim.iso14443b import TypeBCard
from hal.sim.pn532_emulator import Pn532Emulator
from hal.sim.vpcd import VpcdCard

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_READER = "Virtual PCD 00 00"
VPCD_PORT = 35963
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str):
    """Fail in CI (the stack must be there), skip on a developer machine."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)", pytrace=False)
    pytest.skip(reason)


def _vpcd_readers() -> list[str] | None:
    import smartcard.scard as scard

    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        return None
    try:
        code, readers = scard.SCardListReaders(context, [])
        return list(readers) if code == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def _other_pcscd() -> psutil.Process | None:
    for process in psutil.process_iter(["name", "status"]):
        if process.info["name"] == "pcscd" and process.info["status"] != psutil.STATUS_ZOMBIE:
            return process
    return None


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory):
    """A running pcscd with the vpcd readers; yields the reader name cards appear in."""
    binary = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
    if binary is None:
        missing("pcscd is not installed (apt-get install pcscd)")
    if not VPCD_DRIVER.exists():
        missing(f"the vpcd driver {VPCD_DRIVER} is not installed (apt-get install vsmartcard-vpcd)")
    other = _other_pcscd()
    if other is not None:
        readers = _vpcd_readers() or []
        if VPCD_READER not in readers:
            pytest.skip(f"another pcscd (PID {other.pid}) runs without the vpcd readers; not touching it")
        yield VPCD_READER
        return
    config = tmp_path_factory.mktemp("pcscd-readers")  # pcscd parses every file here: nothing else
    log_path = tmp_path_factory.mktemp("pcscd-log") / "pcscd.log"
    (config / "vpcd").write_text(f"DEVICENAME /dev/null:0x8C7B\nFRIENDLYNAME \"Virtual PCD\"\nLIBPATH {VPCD_DRIVER}\n")
    log_file = log_path.open("wb")
    # No -a: pcscd would log every APDU, VERIFY data included (add it by hand when debugging).
    process = subprocess.Popen([binary, "-f", "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while VPCD_READER not in (_vpcd_readers() or []):
            if process.poll() is not None:
                pytest.fail(f"pcscd exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"pcscd did not offer {VPCD_READER!r} within 10 s")
            time.sleep(0.05)
        yield VPCD_READER
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log_file.close()


@pytest.fixture
def vpcd_insert(pcscd):
    """Insert a card object into the vpcd reader; removed after the test."""
    inserted: list[VpcdCard] = []

    def insert(card) -> VpcdCard:
        vpcd = VpcdCard(card, port=VPCD_PORT).insert()
        inserted.append(vpcd)
        return vpcd

    yield insert
    for vpcd in inserted:
        vpcd.remove()
    if inserted:
        wait_until_empty(pcscd)


def wait_until_empty(reader_name: str, timeout_s: float = 3.0) -> None:
    """Block until pcscd has noticed the card left (it polls vpcd), so the next test starts clean."""
    wait_for_card_state(reader_name, present=False, timeout_s=timeout_s)


def wait_for_card_state(reader_name: str, present: bool, timeout_s: float = 3.0) -> None:
    """Block until pcscd reports the reader holding (or not holding) a card."""
    import smartcard.scard as scard

    wanted = scard.SCARD_STATE_PRESENT if present else scard.SCARD_STATE_EMPTY
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code, states = scard.SCardGetStatusChange(context, 0, [(reader_name, scard.SCARD_STATE_UNAWARE)])
            if code == scard.SCARD_S_SUCCESS and states[0][1] & wanted:
                return
            time.sleep(0.05)
        pytest.fail(f"pcscd did not report {reader_name!r} {'with' if present else 'without'} a card in {timeout_s} s")
    finally:
        scard.SCardReleaseContext(context)


@pytest.fixture
def pn532():
    """Start a PN532 emulator with a card: ``pn532(card, max_baud=…, link=…) -> (emulator, type_b_card)``."""
    started: list[Pn532Emulator] = []

    def start(card, max_baud: int = 921600, link: str | None = None, emulate_time: bool = False):
        radio = TypeBCard(card)
        emulator = Pn532Emulator(radio, max_baud=max_baud, link=link, emulate_time=emulate_time).start()
        started.append(emulator)
        return emulator, radio

    yield start
    for emulator in started:
        emulator.close()


@pytest.fixture(scope="session")
def profile_templates(tmp_path_factory):
    """Generated virtual card profiles, one per token kind, made on first use (RSA keys take time)."""
    from hal.sim.card.generator import make_profile

    root = tmp_path_factory.mktemp("card-profiles")
    made = {}

    def template(kind: str):
        if kind not in made:
            made[kind] = make_profile(root / kind, kind=kind, ca_dir=root / "ca", seed=len(made) + 1)
        return made[kind]

    return template


@pytest.fixture
def make_card(profile_templates, tmp_path):
    """``make_card(kind) -> ProfileInfo`` of a fresh copy (tests may spend its retry counters)."""

    def make(kind: str = "card"):
        template = profile_templates(kind)
        directory = tmp_path / f"{kind}-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(template.directory, directory)
        return dataclasses.replace(template, directory=directory)

    return make


@pytest.fixture
def card_profile(make_card) -> Path:
    return make_card("card").directory
