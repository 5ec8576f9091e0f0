"""The staff page's routes over a terminal without a broker (starlette's TestClient): login, session,
CSRF, redirects and 401s, the commands the buttons send, and what the views show (and never show)."""

from __future__ import annotations

import base64
import json
import re
import threading

import pytest
from fastapi.testclient import TestClient

from firmware.link.schemas import AckMessage, Command, EventMessage, Reply, StatusMessage
from terminal.staff import StaffAccounts, create_app, hash_password
from terminal.staff.accounts import LoginThrottle
from terminal.staff.sessions import COOKIE
from terminal.staff.snapshot import take
from tests.unit.terminal.fakes import deliver, offline_terminal, visual_result

PASSWORD = "correct horse battery"
ACCOUNTS = StaffAccounts({"staff": hash_password(PASSWORD), "sato": hash_password("another password")})
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def holder():
    from tests.proofs import Pki

    return Pki().holder()


@pytest.fixture
def terminal():
    term = offline_terminal()
    deliver(term, "status", StatusMessage(reader="r1", state="online", problems=["indicators: LED missing"]))
    deliver(term, "status", StatusMessage(reader="r2", state="offline"), reader="r2")
    return term


@pytest.fixture
def app(terminal):
    return create_app(terminal, ACCOUNTS)


@pytest.fixture
def anonymous(app):
    return TestClient(app, base_url=BASE)


def _login(client, user="staff", password=PASSWORD):
    return client.post("/login", data={"user": user, "password": password}, follow_redirects=False)


@pytest.fixture
def staff(app):
    client = TestClient(app, base_url=BASE)
    assert _login(client).status_code == 303
    return client


def _csrf(client) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)[1]


def _commands(terminal) -> list[Command]:
    return [Command.model_validate_json(p) for p in terminal._client.on("cmd")]


# --- no session: nothing but the login page -------------------------------------------------------

@pytest.mark.parametrize("method,path,status", [
    ("GET", "/", 303), ("GET", "/no-such-page", 303), ("GET", "/docs", 303), ("GET", "/openapi.json", 303),
    ("GET", "/live", 401), ("GET", "/api/view", 401),
    ("POST", "/readers/s1/r1/command", 401), ("POST", "/logout", 401), ("POST", "/", 401),
])
def test_without_a_session_pages_go_to_login_and_endpoints_answer_401(anonymous, terminal, method, path, status):
    response = anonymous.request(method, path, data={"cmd": "visual_ok", "csrf": "x"}, follow_redirects=False)
    assert response.status_code == status
    if status == 303:
        assert response.headers["location"] == "/login"
    assert "s1/r1" not in response.text
    assert terminal._client.on("cmd") == []


def test_the_login_page_and_static_files_need_no_session(anonymous):
    page = anonymous.get("/login")
    assert page.status_code == 200 and 'name="password"' in page.text
    assert anonymous.get("/static/staff.js").status_code == 200


def test_a_wrong_password_or_user_is_refused_without_a_cookie(anonymous, caplog):
    for user, password in (("staff", "wrong password"), ("nobody", PASSWORD), ("sato", PASSWORD), ("", "")):
        response = _login(anonymous, user, password)
        assert response.status_code == 401 and COOKIE not in response.headers.get("set-cookie", "")
        assert "wrong user name or password" in response.text
    assert PASSWORD not in caplog.text and "nobody" not in caplog.text  # what was typed is never logged
    assert anonymous.get("/", follow_redirects=False).status_code == 303


def test_login_sets_a_strict_http_only_cookie_and_opens_the_page(anonymous):
    response = _login(anonymous, "Sato", "another password")  # user names are not case-sensitive
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    page = anonymous.get("/")
    assert page.status_code == 200 and '<span class="user" id="user-name">sato</span>' in page.text
    assert anonymous.get("/login", follow_redirects=False).headers["location"] == "/"  # logged in already


def test_too_many_failures_lock_the_login_for_a_while(terminal):
    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    clock = Clock()
    client = TestClient(create_app(terminal, ACCOUNTS, throttle=LoginThrottle(3, 30, clock)), base_url=BASE)
    for _ in range(3):
        assert _login(client, password="wrong password").status_code == 401
    assert _login(client).status_code == 429  # even the right password waits
    clock.now = 31
    assert _login(client).status_code == 303


def test_logout_ends_the_session_on_the_server(staff):
    cookie = staff.cookies[COOKIE]
    response = staff.post("/logout", data={"csrf": _csrf(staff)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    replay = TestClient(staff.app, base_url=BASE, cookies={COOKIE: cookie})  # a copy of the old cookie
    assert replay.get("/", follow_redirects=False).status_code == 303
    assert replay.get("/api/view").status_code == 401


def test_a_forged_cookie_is_no_session(anonymous):
    anonymous.cookies.set(COOKIE, "eyJmb3JnZWQiOiJ5ZXMifQ.forged")
    assert anonymous.get("/", follow_redirects=False).status_code == 303


def test_a_foreign_host_header_is_refused(staff):
    assert staff.get("/", headers={"host": "attacker.example"}).status_code == 400  # DNS rebinding


def test_every_answer_forbids_framing_caching_and_foreign_scripts(staff, anonymous):
    for response in (staff.get("/"), staff.get("/api/view"), anonymous.get("/login"),
                     anonymous.get("/api/view")):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"


# --- the buttons ---------------------------------------------------------------------------------

def test_a_command_needs_the_sessions_csrf_token(staff, terminal):
    for csrf in ("", "not-the-token"):
        response = staff.post("/readers/s1/r1/command", data={"cmd": "visual_ok", "csrf": csrf},
                              follow_redirects=False)
        assert response.status_code == 403
    other = TestClient(staff.app, base_url=BASE)
    _login(other, "sato", "another password")
    response = staff.post("/readers/s1/r1/command", data={"cmd": "visual_ok", "csrf": _csrf(other)})
    assert response.status_code == 403  # another session's token is no good either
    assert staff.post("/logout", data={}).status_code == 403
    assert terminal._client.on("cmd") == [] and terminal.visual.waiting == []


def test_visual_ok_is_sent_recorded_with_the_user_and_its_reply_shown(staff, terminal):
    response = staff.post("/readers/s1/r1/command", data={"cmd": "visual_ok", "csrf": _csrf(staff)},
                          follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    (sent,) = _commands(terminal)
    assert sent.cmd.value == "visual_ok" and terminal._client.published[-1][0] == "uketsuke/v1/s1/r1/cmd"
    (ok,) = terminal.visual.waiting
    assert (ok.site, ok.reader, ok.staff, ok.command_id) == ("s1", "r1", "staff", sent.id)
    page = staff.get("/").text
    assert "s1/r1: visual_ok sent" in page  # once, after the redirect
    assert "s1/r1: visual_ok sent" not in staff.get("/").text
    assert "waiting for the kiosk" in staff.get("/live").text
    deliver(terminal, "reply", Reply(id=sent.id, ok=True, detail={"accepted": True}))
    (row,) = staff.get("/api/view").json()["commands"]
    assert (row["user"], row["cmd"], row["outcome"]) == ("staff", "visual_ok", "done")


@pytest.mark.parametrize("form,sent", [
    ({"cmd": "visual_ng"}, ("visual_ng", {})),
    ({"cmd": "visual"}, ("visual", {})),
    ({"cmd": "cancel", "language": "en"}, ("cancel", {})),  # the form's language goes only with set_language
    ({"cmd": "set_language", "language": "en"}, ("set_language", {"language": "en"})),
])
def test_each_button_sends_its_command(staff, terminal, form, sent):
    response = staff.post("/readers/s1/r1/command", data=form | {"csrf": _csrf(staff)}, follow_redirects=False)
    assert response.status_code == 303
    (command,) = _commands(terminal)
    assert (command.cmd.value, dict(command.args)) == sent
    assert terminal.visual.waiting == []  # only an OK is recorded


@pytest.mark.parametrize("path,form,status", [
    ("/readers/s1/r9/command", {"cmd": "visual_ok"}, 404),  # no such reader
    ("/readers/s9/r1/command", {"cmd": "visual_ok"}, 404),
    ("/readers/s1/r2/command", {"cmd": "visual_ok"}, 409),  # offline: the OK would wait at the broker
    ("/readers/s1/r1/command", {"cmd": "ping"}, 400),  # not a staff command
    ("/readers/s1/r1/command", {"cmd": "start"}, 400),
    ("/readers/s1/r1/command", {"cmd": "reboot"}, 400),
    ("/readers/s1/r1/command", {"cmd": "set_language", "language": "xx"}, 400),
    ("/readers/s1/r1/command", {"cmd": "set_language"}, 400),
])
def test_bad_commands_are_refused_and_nothing_is_sent(staff, terminal, path, form, status):
    response = staff.post(path, data=form | {"csrf": _csrf(staff)}, follow_redirects=False)
    assert response.status_code == status
    assert terminal._client.on("cmd") == []


# --- what the page shows -------------------------------------------------------------------------

def _pin(holder, **fields):
    from tests.proofs import pin_result

    return pin_result(holder, None, **fields)  # s1/r1, over a nonce of the kiosk's (not fresh)


def test_check_ins_with_their_verdicts_and_never_the_certificate(staff, terminal, holder):
    good, forged = _pin(holder), _pin(holder, forged=True)
    unconfirmed = visual_result(cert_der_b64=base64.b64encode(holder.cert_der).decode())
    for result in (good, forged, unconfirmed):
        deliver(terminal, "result", result)
    staff.post("/readers/s1/r1/command", data={"cmd": "visual_ok", "csrf": _csrf(staff)})
    confirmed = visual_result(cert_der_b64=base64.b64encode(holder.cert_der).decode())
    deliver(terminal, "result", confirmed)
    view = staff.get("/api/view").json()
    rows = {row["id"]: row for row in view["checkins"]}
    assert [row["id"] for row in view["checkins"]] == [confirmed.id, unconfirmed.id, forged.id, good.id]
    assert rows[good.id]["verdict"] == "verified" and rows[good.id]["fresh"] is False
    assert any("freshness unverified" in p for p in rows[good.id]["problems"])
    assert rows[forged.id]["verdict"] == "failed" and any("does not verify" in p for p in rows[forged.id]["problems"])
    assert rows[unconfirmed.id]["verdict"] == "unconfirmed" and rows[unconfirmed.id]["fresh"] is None
    assert (rows[confirmed.id]["verdict"], rows[confirmed.id]["confirmed_by"]) == ("confirmed", "staff")
    assert rows[good.id]["method"] == "pin" and rows[good.id]["eligibility"] == "valid"
    assert rows[good.id]["cert"] == __import__("hashlib").sha256(holder.cert_der).hexdigest()[:12]
    page, live = staff.get("/").text, staff.get("/live").text
    assert 'data-verdict="failed"' in page and 'data-verdict="confirmed"' in live
    b64 = base64.b64encode(holder.cert_der).decode()
    for text in (page, live, json.dumps(view)):
        assert b64[:40] not in text and good.signature_b64[:40] not in text and good.nonce_b64 not in text


def test_readers_online_offline_problems_and_what_they_wait_for(staff, terminal):
    deliver(terminal, "event", EventMessage(reader="r1", state="visual"))
    deliver(terminal, "event", EventMessage(reader="r1", state="visual_wanted", detail="proxy"))
    deliver(terminal, "event", EventMessage(reader="r2", state="call_staff"), reader="r2")
    readers = {r["key"]: r for r in staff.get("/api/view").json()["readers"]}
    assert (readers["s1/r1"]["online"], readers["s1/r2"]["online"]) == (True, False)
    assert readers["s1/r1"]["problems"] == ["indicators: LED missing"]
    assert readers["s1/r1"]["wants_visual"] and readers["s1/r1"]["proxy"] and readers["s1/r1"]["state"] == "visual"
    assert readers["s1/r2"]["called_staff"] and not readers["s1/r2"]["wants_visual"]
    page = staff.get("/").text
    assert 'data-status="online"' in page and 'data-status="offline"' in page
    assert page.count("<fieldset disabled>") == 1  # the offline reader's buttons
    assert "waiting for a visual check (代理 proxy)" in page and "staff called" in page
    deliver(terminal, "event", EventMessage(reader="r1", state="checking"))  # staff said OK: it goes on
    readers = {r["key"]: r for r in staff.get("/api/view").json()["readers"]}
    assert not readers["s1/r1"]["wants_visual"] and readers["s1/r1"]["state"] == "checking"


def test_a_text_from_a_kiosk_is_escaped(staff, terminal):
    deliver(terminal, "status", StatusMessage(reader="r1", state="online", problems=["<script>alert(1)</script>"]))
    page = staff.get("/").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_snapshot_while_paho_delivers(terminal, holder):
    """The page reads under the terminal's lock while paho's thread records results: no torn view."""
    results = [_pin(holder) for _ in range(150)]
    done = threading.Event()

    def paho():
        for result in results:
            deliver(terminal, "result", result)
        done.set()

    thread = threading.Thread(target=paho, name="fake-paho")
    thread.start()
    seen = 0
    while not done.is_set():
        view = take(terminal, limit=20)
        assert len(view.checkins) <= 20 and all(row.verdict == "verified" for row in view.checkins)
        seen = max(seen, view.results_total)
    thread.join(10)
    assert take(terminal).results_total == 150
    assert [AckMessage.model_validate_json(p).id for p in terminal._client.on("ack")] == [r.id for r in results]
