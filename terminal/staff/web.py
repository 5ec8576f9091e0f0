"""The staff page: FastAPI routes over a :class:`~terminal.app.ReferenceTerminal`.

``/`` shows the readers (online/offline from their retained status, their problems, what they are
doing) and the live check-in list with each proof's verdict; ``static/staff.js`` refreshes that part
from ``/live`` every two seconds. Each reader has buttons for 目視確認 OK / NG, a switch to a visual
check, cancel and the screen language; they POST forms to ``/readers/{site}/{reader}/command``,
which sends the command with :meth:`ReferenceTerminal.send_command` (a paho publish: it never waits
for the kiosk) and comes back to ``/``, where the command's reply appears once the kiosk answers.
``/api/view`` is the same view as JSON.

Security, in the order a request meets it: a Host header must name this server (no DNS
rebinding); every path but ``/login`` and ``/static/`` needs a live session — a page redirects to
``/login``, anything else answers 401; every POST but the login carries the session's CSRF token;
every answer forbids framing, caching and scripts from elsewhere (CSP). The OpenAPI docs are off:
they would be routes without a login. See :mod:`terminal.staff.sessions` and
:mod:`terminal.staff.accounts`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from firmware.link.schemas import IDENTIFIER_PATTERN, LANGUAGES, CommandName, now_utc
from terminal.staff.accounts import USER_PATTERN, LoginThrottle, StaffAccounts
from terminal.staff.sessions import COOKIE, Session, Sessions
from terminal.staff.snapshot import CommandLog, SentCommand, take

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: The commands a staff member may send from the page (ping and start are for technicians).
STAFF_COMMANDS = (CommandName.VISUAL_OK, CommandName.VISUAL_NG, CommandName.VISUAL, CommandName.CANCEL,
                  CommandName.SET_LANGUAGE)
LANGUAGE_NAMES = {"ja": "日本語", "en": "English", "zh": "中文", "ko": "한국어", "vi": "Tiếng Việt", "pt": "Português"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_PUBLIC = ("/login", "/static/")
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)


def _page(name: str, status_code: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(languages=LANGUAGE_NAMES, **context),
                        status_code=status_code)


def allowed_hosts_for(bind_host: str) -> list[str]:
    """The Host headers to accept: the bind address and the loopback names (any, on a wildcard bind)."""
    if bind_host in ("0.0.0.0", "::", ""):
        return ["*"]
    return sorted({bind_host, *LOCAL_HOSTS})


def create_app(terminal, accounts: StaffAccounts, *, sessions: Sessions | None = None,
               throttle: LoginThrottle | None = None, allowed_hosts: list[str] | None = None,
               secure_cookie: bool = False, checkins_shown: int = 50) -> FastAPI:
    """The staff page for ``terminal`` (started or not: it only reads the view and sends commands).

    Args:
        secure_cookie: mark the session cookie ``Secure`` (when a TLS proxy serves the page).
    """
    sessions = sessions or Sessions()
    throttle = throttle or LoginThrottle()
    commands = CommandLog()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions, app.state.commands = sessions, commands

    @app.middleware("http")
    async def require_session(request: Request, call_next):
        path = request.url.path
        session = sessions.get(request.cookies.get(COOKIE))
        request.state.session = session
        if session is None and not path.startswith(_PUBLIC):
            if request.method == "GET" and not path.startswith("/api/") and path != "/live":
                response = RedirectResponse("/login", status_code=303)
            else:
                response = JSONResponse({"detail": "log in first"}, status_code=401)
        else:
            response = await call_next(request)
        response.headers.update(_HEADERS)
        if not path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or list(LOCAL_HOSTS))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def login_page(error: str | None = None, status_code: int = 200) -> HTMLResponse:
        return _page("login.html", status_code, error=error, site=terminal.site)

    @app.get("/login")
    def login_form(request: Request):
        if request.state.session is not None:
            return RedirectResponse("/", status_code=303)
        return login_page()

    @app.post("/login")
    def login(user: str = Form("", max_length=64), password: str = Form("", max_length=1024)):
        wait_s = throttle.wait_s()
        if wait_s > 0:
            return login_page(f"ログインを一時停止しています。{wait_s:.0f} 秒後にもう一度 · "
                              f"too many failed logins: try again in {wait_s:.0f} s", 429)
        user = user.strip().lower()
        if not (USER_PATTERN.match(user) and accounts.check(user, password)):
            throttle.failed()
            log.warning("staff login refused (%s)", f"user {user}" if user in accounts.users else "unknown user")
            return login_page("ユーザー名またはパスワードが違います · wrong user name or password", 401)
        throttle.succeeded()
        cookie, _ = sessions.open(user)
        log.info("staff %s logged in", user)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=secure_cookie, path="/")
        return response

    def csrf_refused() -> Response:
        return JSONResponse({"detail": "the form is out of date (CSRF token): reload the page"}, status_code=403)

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("", max_length=128)):
        session: Session = request.state.session
        if not session.csrf_ok(csrf):
            return csrf_refused()
        sessions.close(session)
        log.info("staff %s logged out", session.user)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookie)
        return response

    def view():
        return take(terminal, commands.recent(), checkins_shown)

    @app.get("/")
    def page(request: Request):
        session: Session = request.state.session
        notice, session.notice = session.notice, None
        return _page("page.html", view=view(), session=session, notice=notice)

    @app.get("/live")
    def live(request: Request):
        return _page("live.html", view=view(), session=request.state.session)

    @app.get("/api/view")
    def api_view():
        return view().as_json()

    @app.post("/readers/{site}/{reader}/command")
    def command(request: Request, site: str, reader: str, cmd: str = Form("", max_length=32),
                csrf: str = Form("", max_length=128), language: str = Form("", max_length=8)):
        session: Session = request.state.session
        if not session.csrf_ok(csrf):
            return csrf_refused()
        known = view().reader(site, reader) if _IDENTIFIER.fullmatch(site) and _IDENTIFIER.fullmatch(reader) else None
        if known is None:
            return JSONResponse({"detail": "no such reader"}, status_code=404)
        if not known.online:  # the broker would keep it for the kiosk's return: a stale OK must not wait there
            return JSONResponse({"detail": "the reader is offline"}, status_code=409)
        try:
            name = CommandName(cmd)
        except ValueError:
            name = None
        if name not in STAFF_COMMANDS:
            return JSONResponse({"detail": f"cmd must be one of {', '.join(c.value for c in STAFF_COMMANDS)}"},
                                status_code=400)
        args = {"language": language} if name == CommandName.SET_LANGUAGE else {}
        if name == CommandName.SET_LANGUAGE and language not in LANGUAGES:
            return JSONResponse({"detail": f"language must be one of {', '.join(LANGUAGES)}"}, status_code=400)
        try:
            sent = terminal.send_command(site, reader, name, staff=session.user, **args)
        except ValidationError:
            return JSONResponse({"detail": "the command does not fit the contract"}, status_code=400)
        commands.add(SentCommand(now_utc(), session.user, site, reader, name.value, sent.id))
        log.info("staff %s sent %s to %s/%s (command %s)", session.user, name.value, site, reader, sent.id)
        session.notice = f"{site}/{reader}: {name.value} sent"
        return RedirectResponse("/", status_code=303)

    return app
