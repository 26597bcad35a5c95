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
import threading
from bisect import bisect_left
from datetime import datetime
from operator import itemgetter
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bus.serving import BackgroundServer
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


class SampleServer(BackgroundServer):
    """A sample app served by uvicorn in a background thread, for tests and demonstrations:

    with SampleServer(create_app(system, "key")) as url:
        httpx.get(f"{url}/api/v1/ho-so", headers={"X-API-Key": "key"})
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app, host, port, name="sample-local")
