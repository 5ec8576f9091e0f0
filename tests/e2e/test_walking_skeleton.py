"""A check-in end to end, headless: idle → card tapped → certificate read through the CardLink → PIN
typed on the screen → signature over a challenge → consent → result over MQTT (real mosquitto) →
reference terminal shows it → card removed → idle. Every path has its own test in test_paths.py."""

import base64
import json
import subprocess
import sys
import time

import pygame
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from firmware.app import Kiosk
from firmware.config import Broker, Config, Timeouts
from hal.sim.card.generator import make_profile
from terminal.app import ReferenceTerminal
from tests.services import wait_until
from ui.demo import scripted_check_in, wait_for_state
from ui.patient import Patient
from ui.window import KioskWindow

pytestmark = pytest.mark.e2e

MY_SECRETS = ("1234",)  # the profile's PIN: must never appear in logs or files


@pytest.fixture(scope="module")
def card_profiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    ca = root / "ca"
    return {kind: make_profile(root / kind, kind=kind, ca_dir=ca, seed=7, card_face=False) for kind in ("card", "android")}


@pytest.fixture
def kiosk_and_terminal(mosquitto, tmp_path, no_thread_leaks):
    config = Config(data_dir=tmp_path / "var", broker=Broker(port=mosquitto.port, insecure_local=True),
                    timeouts=Timeouts(error_s=30, done_s=30, context_s=1))
    terminal = ReferenceTerminal(config.broker, site=config.site_id)
    terminal.start()
    assert terminal.wait_connected(10)
    kiosk = Kiosk(config)
    kiosk.start()
    Patient().attach(kiosk)
    window = KioskWindow(kiosk)
    yield kiosk, terminal, window
    window.close()
    kiosk.stop()
    terminal.stop()


def test_check_in_end_to_end(kiosk_and_terminal, card_profiles, tmp_path, caplog):
    kiosk, terminal, window = kiosk_and_terminal
    states = []
    kiosk.add_listener(lambda state, session: states.append(state))
    shots = scripted_check_in(kiosk, window, terminal, card_profiles["card"].directory, tmp_path / "shots")
    assert [p.name for p in shots] == ["01-idle.png", "02-done.png", "03-idle-again.png"]
    assert states == ["reading", "choose_method", "pin", "pin_checking", "checking", "consent", "prescription",
                      "done", "idle"]
    (result,) = terminal.view.results
    certificate = x509.load_der_x509_certificate(base64.b64decode(result.cert_der_b64))
    assert certificate.subject.rfc4514_string().startswith("CN=")
    assert result.card_kind == "card" and result.cert_status.value == "valid" and result.method.value == "pin"
    nonce, signature = base64.b64decode(result.nonce_b64), base64.b64decode(result.signature_b64)
    certificate.public_key().verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())  # the PIN's proof
    assert (result.site, result.reader) == ("demo-clinic", "reader-01")
    assert kiosk.link.wait_flushed(10)
    assert kiosk.indicators.history[-1][0] in ("status", "beep")
    assert kiosk.flow.session.card is None  # wiped on the return to idle
    for secret in MY_SECRETS:
        assert secret not in caplog.text


def test_card_pulled_mid_read_aborts_cleanly(kiosk_and_terminal, card_profiles):
    kiosk, terminal, window = kiosk_and_terminal
    states = []
    kiosk.add_listener(lambda state, session: states.append(state))
    kiosk.reader.present(card_profiles["card"].directory)
    kiosk.reader.remove_after(3)  # the card leaves the field after three more APDUs
    deadline = time.monotonic() + 15
    while states[-1:] != ["idle"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert states[0] == "reading" and states[-1] == "idle" and "done" not in states
    assert kiosk.flow.session.card is None
    assert terminal.view.results == [] and len(kiosk.outbox) == 0


def test_a_touch_on_cancel_ends_the_visit(kiosk_and_terminal, card_profiles):
    kiosk, terminal, window = kiosk_and_terminal
    kiosk.demo_patient = None
    kiosk.listeners._listeners.clear()  # nobody answers: the method screen waits
    kiosk.reader.present(card_profiles["card"].directory)
    assert wait_for_state(kiosk, "choose_method", 15)
    window.draw()
    (cancel,) = [b for b in window.renderer.buttons if b.event == "cancel"]
    x, y = cancel.rect.center
    w, h = window.surface.get_size()
    pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, x=x / w, y=y / h, touch_id=0, finger_id=0))
    window.run(max_frames=2)  # the touch on やめる cancels the visit
    assert wait_for_state(kiosk, "idle", 5)
    kiosk.reader.remove()


def test_broker_down_at_start_keeps_the_kiosk_running(mosquitto, tmp_path, card_profiles):
    mosquitto.stop()
    config = Config(data_dir=tmp_path / "var", broker=Broker(port=mosquitto.port, insecure_local=True),
                    timeouts=Timeouts(context_s=1))
    kiosk = Kiosk(config)
    kiosk.start()
    Patient().attach(kiosk)
    try:
        kiosk.reader.present(card_profiles["card"].directory)
        assert wait_for_state(kiosk, "done", 15)
        assert wait_until(lambda: len(kiosk.outbox) == 1, 5)  # the link writes it on its own thread
        # the terminal is unreachable: the done screen says the result is kept and to tell reception
        assert kiosk.flow.session.terminal_online is False
        mosquitto.start()
        terminal = ReferenceTerminal(config.broker, site=config.site_id)
        terminal.start()
        try:
            assert terminal.wait_for(lambda v: len(v.results) == 1, 20)
        finally:
            terminal.stop()
    finally:
        kiosk.stop()


def test_make_run_headless_demo(tmp_path):
    """What `make run` does without a display: embedded broker, terminal, named scenarios played with
    screenshots of every screen and one JSON line each (three of them here; make run plays all)."""
    proc = subprocess.run(
        [sys.executable, "-m", "provisioning.cli", "run", "--demo", "--headless", "--screenshots", str(tmp_path / "s"),
         "--scenario", "face", "--scenario", "iphone", "--scenario", "staff-check"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HEADLESS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [line["scenario"] for line in lines] == ["face", "iphone", "staff-check"]
    assert [line["method"] for line in lines] == ["face", "smartphone", "visual"]
    assert all(line["terminal_received"] and line["result_id"] and line["consent"] for line in lines)
    assert "verified=yes" in proc.stderr  # the terminal checked the face and phone proofs
    shots = sorted(p.name for p in (tmp_path / "s" / "face").iterdir())
    assert shots[0] == "01-reading.png" and "04-face-capture.png" in shots and any("done" in s for s in shots)
    assert all(p.stat().st_size > 5000 for p in (tmp_path / "s" / "face").iterdir())
    assert "Traceback" not in proc.stderr
