"""The console's gate, in front of every route: who is asking, and is their POST genuine.

Pure ASGI middleware, so that it sees each request before any handler does:

- it reads the session cookie (`sessions.py`) and the account it names, for the handlers
  (`request.state.session`, `request.state.account`);
- every POST must carry the session's CSRF token, as the form field `csrf` or the header
  `X-CSRF-Token`, or it is answered 403 before any handler runs: the check cannot be
  forgotten in a new form;
- without a logged-in account, a page redirects to the login form and the API answers 401;
  only the login form, the static files and the probes are open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.console.accounts import Account, Accounts
from bus.console.sessions import COOKIE, Session, SessionSigner

log = structlog.get_logger(__name__)

OPEN: Final = ("/login", "/static/", "/healthz", "/readyz", "/metrics")
MAX_FORM_BYTES: Final = 64 * 1024  # the console's forms are a few fields
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"


class Guard:
    def __init__(self, app: ASGIApp, accounts: Accounts, signer: SessionSigner) -> None:
        self.app = app
        self.accounts = accounts
        self.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session = self.signer.loads(request.cookies.get(COOKIE))
        account = self.accounts.get(session.operator) if session and session.operator else None
        state = scope.setdefault("state", {})
        state["session"], state["account"] = session, account
        if scope["method"] == "POST":
            body = await _body(receive)
            if body is None:
                await PlainTextResponse("form too large", 413)(scope, receive, send)
                return
            if not _csrf_ok(request, session, body):
                log.warning(
                    "POST refused: missing or wrong CSRF token",
                    path=scope["path"],
                    operator=account.name if account else None,
                )
                await PlainTextResponse("missing or wrong CSRF token", 403)(scope, receive, send)
                return
            receive = _replay(body)
        if account is None and not scope["path"].startswith(OPEN):
            await _login_first(request)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def session_of(request: Request) -> Session | None:
    session: Session | None = request.state.session
    return session


def account_of(request: Request) -> Account:
    """The logged-in account (the guard let no one else through)."""
    account: Account = request.state.account
    return account


def _csrf_ok(request: Request, session: Session | None, body: bytes) -> bool:
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        token = next(iter(parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD, [])), None)
    return session is not None and session.csrf_matches(token)


def _login_first(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "log in first"}, 401)
    if request.method != "GET":
        return PlainTextResponse("log in first", 403)
    return RedirectResponse("/login", 303)


async def _body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
