"""The sample local system behind a paged REST API, as a vendor's one-stop system offers it.

    GET /api/v1/ho-so?cap_nhat_tu=<cap_nhat_luc>&so_luong=<n>    header X-API-Key: <key>
    → {"items": [records with cap_nhat_luc >= cap_nhat_tu, oldest first, at most n]}

The cursor is inclusive ("từ", from), as such APIs usually are: the last record of a page
comes again at the head of the next one, and a connector must take that calmly (it knows the
record's seq already). A missing or empty `cap_nhat_tu` reads from the beginning.

`POST /_sample/advance?steps=N` moves the system on, for tests and demonstrations; it is not
part of the vendor's API and needs no key.
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from bisect import bisect_left
from datetime import datetime
from operator import itemgetter
from types import TracebackType
from typing import Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from connectors.sample.local import STAMP_FORMAT, TIME_FORMAT, UPDATED_AT, LocalSystem

PATH: Final = "/api/v1/ho-so"
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
MAX_STEPS: Final = 100_000


class BadRequest(Exception):
    """A parameter the API cannot use; the message says which and why."""


def create_app(system: LocalSystem, api_key: str) -> Starlette:
    """The API over `system`; every call to the dossier list needs `api_key`."""
    if not api_key:
        raise ValueError("the API key must not be empty")
    # Handlers run on the server's loop while a test thread may advance the system directly.
    lock = threading.Lock()

    async def list_dossiers(request: Request) -> JSONResponse:
        given = request.headers.get("X-API-Key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            problem = "missing X-API-Key header" if not given else "invalid API key"
            return JSONResponse({"error": problem}, status_code=401)
        try:
            cursor = _cursor(request.query_params.get("cap_nhat_tu", ""))
            limit = _count(request.query_params.get("so_luong"), "so_luong", DEFAULT_PAGE, MAX_PAGE)
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        with lock:
            rows = system.records()
        first = bisect_left(rows, cursor, key=itemgetter(UPDATED_AT))
        return JSONResponse({"items": rows[first : first + limit]})

    async def advance(request: Request) -> JSONResponse:
        try:
            steps = _count(request.query_params.get("steps"), "steps", 1, MAX_STEPS)
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        with lock:
            changed = system.advance(steps)
            finished = system.finished
        return JSONResponse({"changed": len(changed), "finished": finished})

    return Starlette(
        routes=[
            Route(PATH, list_dossiers, methods=["GET"]),
            Route("/_sample/advance", advance, methods=["POST"]),
        ]
    )


def _cursor(text: str) -> str:
    """The cursor in cap_nhat_luc's own fixed-width spelling, so that text compares as time."""
    if text == "":
        return ""
    for layout in (STAMP_FORMAT, TIME_FORMAT):
        try:
            return datetime.strptime(text, layout).strftime(STAMP_FORMAT)
        except ValueError:
            continue
    raise BadRequest(
        f"cap_nhat_tu must be a local time YYYY-MM-DD HH:MM:SS[.ffffff], got {text[:40]!r}"
    )


def _count(text: str | None, name: str, default: int, most: int) -> int:
    if text is None:
        return default
    try:
        number = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {text[:40]!r}") from None
    if not 1 <= number <= most:
        raise BadRequest(f"{name} must be between 1 and {most}, got {number}")
    return number


class SampleServer:
    """An ASGI app served by uvicorn in a background thread, for tests and demonstrations:

        with SampleServer(create_app(system, "key")) as url:
            httpx.get(f"{url}/api/v1/ho-so", headers={"X-API-Key": "key"})

    Port 0 (the default) takes a free port; `url` says which.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        """Serve, and return the base URL once the server answers."""
        # Bound here, before the thread starts, so the port is known and already taken.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(
            self.app, access_log=False, log_config=None, timeout_graceful_shutdown=1
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sample-local", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("the sample server did not start; see its log")
            time.sleep(0.01)
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the sample server did not stop")
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
