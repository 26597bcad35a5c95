"""Logging in and out of the console.

The login form itself is CSRF-protected like every other form: its GET hands out an
anonymous session (no operator, a CSRF token), and its POST must send that token back.
A successful login replaces the session with a new one, new token included, so that a
session planted before the login is worth nothing after it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bus.console.accounts import Accounts
from bus.console.guard import session_of
from bus.console.pages import Pages
from bus.console.sessions import COOKIE, Session, SessionSigner
from bus.console.throttle import LoginThrottle

log = structlog.get_logger(__name__)


class Login:
    def __init__(
        self, accounts: Accounts, signer: SessionSigner, pages: Pages, throttle: LoginThrottle
    ) -> None:
        self.accounts = accounts
        self.signer = signer
        self.pages = pages
        self.throttle = throttle

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.form, methods=["GET"]),
            Route("/login", self.submit, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
        ]

    async def form(self, request: Request) -> Response:
        session = session_of(request) or Session.new("")
        return self._answer(request, session, {})

    async def submit(self, request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        client = request.client.host if request.client else "unknown"
        keys = (f"account:{name}", f"address:{client}")
        wait = self.throttle.blocked(*keys)
        if wait > 0:
            log.warning("login throttled", operator=name, client=client)
            problem = f"Too many failed logins: try again in {wait:.0f} s."
            return self._answer(request, Session.new(""), {"problem": problem}, 429)
        # scrypt takes tens of milliseconds of CPU: off the event loop.
        account = await asyncio.to_thread(self.accounts.authenticate, name, password)
        if account is None:
            self.throttle.failed(*keys)
            # Only a known account's name: what was typed may be a password in the wrong field.
            typed = name if self.accounts.get(name) is not None else "<unknown>"
            log.warning("login failed", operator=typed, client=client)
            problem = "Wrong name or password."
            return self._answer(request, Session.new(""), {"problem": problem, "name": name}, 401)
        self.throttle.succeeded(*keys)
        log.info("operator logged in", operator=name, client=client)
        response = RedirectResponse("/", 303)
        self._set_cookie(request, response, Session.new(account.name))
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def _answer(
        self, request: Request, session: Session, context: dict[str, Any], status: int = 200
    ) -> Response:
        response = self.pages.render(
            request, "login.html", {"csrf": session.csrf, **context}, status
        )
        self._set_cookie(request, response, session)
        return response

    def _set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.signer.dumps(session),
            max_age=int(self.signer.max_age),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
