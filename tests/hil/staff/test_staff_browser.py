"""The staff page in a real browser: Debian's chromium, headless, driven by selenium through Debian's
chromedriver, against a reference terminal and real kiosk links on a real mosquitto.

Staff log in, see the readers (one online, one offline) and a check-in that a kiosk link sent, the
list refreshing by itself; press 目視確認 OK and the kiosk receives ``visual_ok``; its visual result
then shows as confirmed, with a face file. Without a session the page and its endpoints are refused.

``UKETSUKE_SCREENSHOTS=DIR`` also saves ``DIR/staff-page.png`` (``make screenshots`` writes the
README's, docs/screenshots/staff-page.png).
"""

from __future__ import annotations

import os
import queue
from pathlib import Path

import pytest

from firmware.config import Broker
from firmware.link.mqtt import KioskLink
from firmware.link.outbox import Outbox
from firmware.link.schemas import CommandName, Method, ResultMessage
from terminal.app import ReferenceTerminal
from terminal.clinic_files import ClinicFiles
from terminal.clinic_files.content import VISUAL_NOTICE
from terminal.registry import Registry, RegistryEntry, cert_sha256
from terminal.staff import StaffAccounts, hash_password, serve
from tests.proofs import Pki, pin_result
from tests.services import require_binary, wait_until

pytestmark = pytest.mark.hil

PASSWORD = "correct horse battery"
#: Headless and quiet: no GPU, no QUIC, no first-run pages, no calls home (the machine has no network).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1360,1000", "--lang=ja")
WAIT_S = 20


@pytest.fixture
def browser(tmp_path):
    binary = require_binary("chromium", "chromium")
    driver_binary = require_binary("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary  # Debian's; with the driver's path below, Selenium Manager never runs
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_binary))
    yield driver
    driver.quit()


class KioskCommands:
    """The kiosk's side of the staff buttons: every command it receives, answered as a kiosk would."""

    def __init__(self):
        self.received: queue.Queue = queue.Queue()

    def __call__(self, command):
        self.received.put(command.cmd)
        return {"accepted": True} if command.cmd in (CommandName.VISUAL_OK, CommandName.VISUAL_NG) else {}


@pytest.fixture
def clinic(mosquitto, tmp_path):
    """Terminal (with clinic files) + staff page + two kiosk links, r1 online and r2 gone offline."""
    pki = Pki()
    holder = pki.holder()
    registry = Registry([RegistryEntry(sha256=cert_sha256(holder.cert_der))])
    terminal = ReferenceTerminal(Broker(port=mosquitto.port, keepalive_s=5, insecure_local=True), site="s1", registry=registry,
                                 files=ClinicFiles(tmp_path / "files", registry))
    terminal.start()
    assert terminal.wait_connected(10)
    staff = serve(terminal, StaffAccounts({"sato": hash_password(PASSWORD)}))
    commands = KioskCommands()
    links = []
    for reader in ("r1", "r2"):
        link = KioskLink("s1", reader, Broker(port=mosquitto.port, keepalive_s=5, insecure_local=True),
                         Outbox(tmp_path / f"{reader}.sqlite3"), on_command=commands)
        link.start()
        assert link.wait_connected(10)
        links.append(link)
    links[1].publish_status(["nfc: the card reader is not connected"])
    assert terminal.wait_for(lambda view: "nfc: the card reader is not connected" in view.problems.get("s1/r2", []),
                             WAIT_S)
    links[1].stop()
    assert terminal.wait_for(lambda view: view.statuses.get("s1/r2") == "offline", WAIT_S)
    yield terminal, staff, links[0], commands, holder, tmp_path / "files"
    links[0].stop()
    for link in links:
        link.outbox.close()
    staff.stop()
    terminal.stop()


def _log_in(driver, url):
    from selenium.webdriver.common.by import By

    driver.get(url)
    assert driver.current_url.endswith("/login")
    driver.find_element(By.ID, "user").clear()
    driver.find_element(By.ID, "user").send_keys("sato")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()


def _until(driver, css: str, text: str | None = None):
    """Wait for an element (with ``text`` in it) to appear, the page refreshing itself meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d):
        try:
            return next((e for e in d.find_elements(By.CSS_SELECTOR, css) if text is None or text in e.text), False)
        except StaleElementReferenceException:  # swapped by the page's own refresh just then
            return False

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(found, f"no {css} with {text!r}")


def _press(driver, reader: str, command: str):
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(5):  # the live part may be swapped between finding the button and clicking it
        try:
            _until(driver, f'article[data-reader="{reader}"] button[value="{command}"]').click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"could not press {command} for {reader}")


def test_staff_log_in_see_a_check_in_and_confirm_a_visual_check(browser, clinic):
    terminal, staff, link, commands, holder, files = clinic
    from selenium.webdriver.common.by import By

    # without a session: the page sends the browser to the login form, and the data stays closed
    browser.get(staff.url + "api/view")
    assert "log in first" in browser.page_source and "s1/r1" not in browser.page_source
    _log_in(browser, staff.url)
    assert _until(browser, "#user-name").text == "sato"
    _until(browser, 'article[data-reader="s1/r1"] .status[data-status="online"]')
    _until(browser, 'article[data-reader="s1/r2"] .status[data-status="offline"]')
    assert "the card reader is not connected" not in browser.find_element(
        By.CSS_SELECTOR, 'article[data-reader="s1/r2"]').text  # an offline reader's old problems are not news

    # a check-in through the real link: it appears without a reload, verified
    assert wait_until(lambda: link.challenges_ready >= 2, WAIT_S)
    checked_in = pin_result(holder, link.take_challenge())
    link.publish_result(checked_in)
    row = _until(browser, f'tr[data-result="{checked_in.id}"] td.verdict[data-verdict="verified"]')
    assert "verified" in row.text
    forged = pin_result(holder, link.take_challenge(), forged=True)
    link.publish_result(forged)
    assert "does not verify" in _until(browser, f'tr[data-result="{forged.id}"].verdict-failed td.problems').text
    assert not browser.find_element(By.CSS_SELECTOR, 'article[data-reader="s1/r2"] button[value="visual_ok"]'
                                    ).is_enabled()  # offline: nothing to send it to
    assert checked_in.cert_der_b64[:40] not in browser.page_source

    # the kiosk asks for a visual check; staff look at the card and press OK
    link.publish_event("visual")
    link.publish_event("visual_wanted")
    _until(browser, 'article[data-reader="s1/r1"].wants-visual')
    _press(browser, "s1/r1", "visual_ok")
    assert commands.received.get(timeout=WAIT_S) == CommandName.VISUAL_OK
    _until(browser, "#notice", "visual_ok sent")
    _until(browser, "tr.command td.outcome", "done")  # the kiosk's reply came back

    # the kiosk goes on and sends the visual result: confirmed by sato, with its face file
    link.publish_event("checking")
    visual = ResultMessage(site="s1", reader="r1", method=Method.VISUAL, card_kind="card",
                           cert_der_b64=checked_in.cert_der_b64, cert_status="valid")
    link.publish_result(visual)
    assert "sato" in _until(browser, f'tr[data-result="{visual.id}"] td.verdict[data-verdict="confirmed"]').text
    assert link.wait_flushed(WAIT_S)  # acknowledged: its face file is in place
    with terminal.locked():
        name = terminal.view.face_files[visual.id]
    assert VISUAL_NOTICE.encode("cp932") in (files / "face" / name).read_bytes()
    _until(browser, f'tr[data-result="{visual.id}"] td', name)

    if os.environ.get("UKETSUKE_SCREENSHOTS"):
        folder = Path(os.environ["UKETSUKE_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        browser.execute_script("document.activeElement && document.activeElement.blur()")
        assert browser.save_screenshot(str(folder / "staff-page.png"))

    # log out: back to the login form, and the old page is closed
    browser.find_element(By.ID, "logout").click()
    assert browser.current_url.endswith("/login")
    browser.get(staff.url)
    assert browser.current_url.endswith("/login")
    browser.get(staff.url + "live")
    assert "log in first" in browser.page_source
