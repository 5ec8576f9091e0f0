"""``uketsuke run --demo --staff-port 0``: the demo's terminal serves the staff page on loopback with a
one-time password, printed with its URL, and stops it with the demo."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from firmware.config import Config
from ui.demo import DEMO_SITE, Demo


def test_the_demo_prints_the_staff_page_and_its_password():
    lines: list[str] = []
    demo = Demo(Config(), staff_port=0, files_dir=None)
    demo.start(printer=lines.append)
    try:
        url, password = re.search(r"staff page (http://127\.0\.0\.1:\d+/) \(user staff, password (\S+)\)",
                                  "\n".join(lines)).groups()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        login = browser.open(url, timeout=10)
        assert login.url.endswith("/login")
        form = urllib.parse.urlencode({"user": "staff", "password": password}).encode()
        page = browser.open(url + "login", data=form, timeout=10)
        assert page.url == url and f"site {DEMO_SITE}" in page.read().decode()
        with pytest.raises(urllib.error.HTTPError):  # a guess is not the password
            browser.open(url + "login", data=urllib.parse.urlencode(
                {"user": "staff", "password": "staff-password"}).encode(), timeout=10)
    finally:
        demo.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "login", timeout=2)  # stopped with the demo
