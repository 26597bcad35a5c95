"""The operator console as one ASGI app, and what runs beside it while it serves.

`Console` holds the parts (the accounts, the session signer, the ops store and its
`DeadLetters`, the broker connection, the flow scraper) and `app()` mounts them:

    /login /logout                 login.py
    /  /api/flow  /api/status       overview.py
    /deadletters...                letters.py
    /audit                         auditlog.py
    /static/...                    the page scripts and style, served from the package
    /metrics /healthz /readyz      bus/probes.py: ready while the ops store answers and the
                                   broker connection is open

While the app runs (its lifespan), the flow is scraped every few seconds and the dead-letter
queue is collected into the store, so new dead letters appear without anyone asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import sqlalchemy as sa
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from bus.broker import Connection
from bus.console.accounts import Accounts
from bus.console.auditlog import AuditPage
from bus.console.flow import Flow
from bus.console.guard import Guard
from bus.console.letters import LetterPages
from bus.console.login import Login
from bus.console.overview import Overview
from bus.console.pages import STATIC, Pages
from bus.console.sessions import SessionSigner
from bus.console.status import StatusBoard
from bus.console.throttle import LoginThrottle
from bus.errors import Forbidden, NotFound, OperatorError
from bus.ops import DeadLetters, OpsStore
from bus.probes import NotReady, probe_routes
from bus.settings import Settings
from bus.tls import BrokerTlsError

log = structlog.get_logger(__name__)

COLLECT_EVERY: Final = 2.0  # seconds between two collections of portal.sync.dlq


class Console:
    def __init__(self, settings: Settings, accounts: Accounts) -> None:
        self.settings = settings
        self.accounts = accounts
        self.signer = SessionSigner(_secret(settings))
        self.store = OpsStore(settings.ops_url.get_secret_value())
        self.connection = Connection.from_settings(settings, name="bus-console")
        self.letters = DeadLetters(self.store, self.connection, settings)
        self.flow = Flow(list(settings.console_metrics_urls))
        self.status = StatusBoard(settings, self.connection)

    def app(self) -> Starlette:
        pages = Pages()
        routes: list[BaseRoute] = [
            *Login(self.accounts, self.signer, pages, LoginThrottle()).routes(),
            *Overview(self.flow, self.letters, self.status, pages).routes(),
            *LetterPages(self.letters, pages).routes(),
            *AuditPage(self.letters, pages).routes(),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            *probe_routes({"ops store": self._store_answers, "broker": self._broker_open}),
        ]
        refused = _refusals(pages)
        return Starlette(
            routes=routes,
            middleware=[Middleware(Guard, accounts=self.accounts, signer=self.signer)],
            exception_handlers={OperatorError: refused, HTTPException: refused},
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # The broker may be away: the console still shows what the store holds meanwhile.
        connecting = asyncio.create_task(self._connect(), name="console-connect")
        background = [
            asyncio.create_task(self.flow.run(), name="console-flow"),
            asyncio.create_task(self._collect(), name="console-collect"),
        ]
        log.info("console started", accounts=len(self.accounts))
        try:
            yield
        finally:
            for task in (*background, connecting):
                task.cancel()
            await asyncio.gather(*background, connecting, return_exceptions=True)
            await self.connection.close()
            self.store.close()

    async def _connect(self) -> None:
        try:
            await self.connection.start()
        except BrokerTlsError as error:
            # Nobody awaits this task until shutdown: say here why the broker's part of the
            # console stays empty.
            log.error("TLS to the broker failed", error=str(error))

    async def _collect(self) -> None:
        while True:
            if self.connection.is_open:
                try:
                    await self.letters.collect()
                except Exception as error:  # the next round tries again; the queue keeps them
                    log.warning("dead-letter collection failed", error=str(error))
            await asyncio.sleep(COLLECT_EVERY)

    async def _store_answers(self) -> None:
        def ping() -> None:
            with self.store.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

        await asyncio.to_thread(ping)

    async def _broker_open(self) -> None:
        if not self.connection.is_open:
            raise NotReady("the connection to the broker is not open")


def _secret(settings: Settings) -> bytes:
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value().encode()
    log.warning(
        "no BUS_CONSOLE_SECRET: sessions are signed with a random key made for this process,"
        " and end when it stops"
    )
    return secrets.token_bytes(32)


def _refusals(pages: Pages) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Forbidden is 403 (audited by DeadLetters already), NotFound 404; an HTTP error keeps
    its status. Pages get a page, the API gets JSON."""

    async def refused(request: Request, error: Exception) -> Response:
        if isinstance(error, Forbidden):
            status, message = 403, "This belongs to a unit you do not answer for."
        elif isinstance(error, NotFound):
            status, message = 404, str(error)
        elif isinstance(error, HTTPException):
            status, message = error.status_code, error.detail
        else:
            status, message = 400, str(error)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status)
        return pages.render(request, "error.html", {"status": status, "message": message}, status)

    return refused
