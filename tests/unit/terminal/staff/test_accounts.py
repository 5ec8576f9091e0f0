"""Staff accounts and sessions: the password file, scrypt hashes, the login throttle, signed cookies."""

from __future__ import annotations

import os

import pytest

from terminal.staff.accounts import (
    LoginThrottle,
    StaffAccounts,
    StaffConfigError,
    check_password,
    hash_password,
)
from terminal.staff.sessions import Sessions


def _file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "staff-password"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_hash_is_salted_scrypt_and_checks_only_its_password():
    one, two = hash_password("correct horse"), hash_password("correct horse")
    assert one.startswith("scrypt$16384$8$1$") and one != two  # a fresh salt each time
    assert check_password(one, "correct horse") and check_password(two, "correct horse")
    assert not check_password(one, "correct horsE")
    assert not check_password("scrypt$3$8$1$AAAA$AAAA", "x")  # malformed: never a match


def test_a_bare_password_is_the_staff_user_and_is_kept_only_hashed(tmp_path):
    accounts = StaffAccounts.load(_file(tmp_path, "# reception\n  correct horse battery  \n"))
    assert accounts.users == ["staff"]
    assert accounts.check("staff", "correct horse battery") and not accounts.check("staff", "correct horse")
    assert "correct horse battery" not in repr(vars(accounts))


def test_named_accounts_plain_or_hashed(tmp_path):
    text = f"sato:first password\nsuzuki:{hash_password('second password')}\n"
    accounts = StaffAccounts.load(_file(tmp_path, text))
    assert accounts.users == ["sato", "suzuki"]
    assert accounts.check("sato", "first password") and accounts.check("suzuki", "second password")
    assert not accounts.check("sato", "second password") and not accounts.check("tanaka", "first password")


@pytest.mark.parametrize("text,message", [
    ("", "has no account"),
    ("# only a comment\n", "has no account"),
    ("short", "shorter than 8"),
    ("sato:a password\nsato:another one\n", "given twice"),
    ("sato:scrypt$1$2$3$x$y\n", "malformed scrypt hash"),
])
def test_bad_password_files_are_one_clear_error(tmp_path, text, message):
    with pytest.raises(StaffConfigError, match=message):
        StaffAccounts.load(_file(tmp_path, text))


def test_missing_unreadable_or_binary_files_are_one_clear_error(tmp_path):
    with pytest.raises(StaffConfigError, match="does not exist"):
        StaffAccounts.load(tmp_path / "nowhere")
    with pytest.raises(StaffConfigError, match="not a file"):
        StaffAccounts.load(tmp_path)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00password")
    with pytest.raises(StaffConfigError, match="not UTF-8"):
        StaffAccounts.load(binary)
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(StaffConfigError, match="cannot be read"):
            StaffAccounts.load(_file(tmp_path, "correct horse", mode=0o000))


def test_a_world_readable_plain_password_file_is_warned_about(tmp_path, caplog):
    StaffAccounts.load(_file(tmp_path, "correct horse", mode=0o644))
    assert "chmod 600" in caplog.text
    caplog.clear()
    StaffAccounts.load(_file(tmp_path, f"staff:{hash_password('correct horse')}", mode=0o644))
    assert "chmod 600" not in caplog.text  # hashes only: nothing to hide


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_throttle_locks_logins_after_failures_in_a_row():
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, lockout_s=30, clock=clock)
    throttle.failed(), throttle.failed(), throttle.succeeded()  # a success resets the count
    throttle.failed(), throttle.failed()
    assert throttle.wait_s() == 0
    throttle.failed()
    assert throttle.wait_s() == 30
    clock.now += 31
    assert throttle.wait_s() == 0


def test_sessions_are_signed_end_on_close_and_expire():
    clock = Clock()
    sessions = Sessions(max_age_s=100, idle_s=40, clock=clock)
    cookie, session = sessions.open("sato")
    assert sessions.get(cookie) is session and session.user == "sato" and len(session.csrf) >= 32
    assert sessions.get(session.id) is None  # the bare id is no cookie: it travels signed
    assert sessions.get(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None  # tampered
    assert sessions.get(Sessions().open("sato")[0]) is None  # signed by another server's key
    assert sessions.get(None) is None and sessions.get("") is None
    clock.now += 39
    assert sessions.get(cookie) is session  # touched: idle time starts again
    clock.now += 39
    assert sessions.get(cookie) is session
    clock.now += 41  # idle too long
    assert sessions.get(cookie) is None
    cookie, session = sessions.open("sato")
    for _ in range(2):
        clock.now += 35
        assert sessions.get(cookie) is session
    clock.now += 35  # 105 s old: past the maximum age however busy
    assert sessions.get(cookie) is None
    cookie, session = sessions.open("sato")
    sessions.close(session)
    assert sessions.get(cookie) is None  # logged out: the cookie is worth nothing now


def test_csrf_token_comparison():
    _, session = Sessions().open("sato")
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok("") and not session.csrf_ok(None) and not session.csrf_ok(session.csrf + "x")


def test_sessions_are_bounded():
    sessions = Sessions(keep=2)
    first, _ = sessions.open("a")
    sessions.open("b"), sessions.open("c")
    assert len(sessions) == 2 and sessions.get(first) is None
