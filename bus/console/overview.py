"""The overview page and the JSON it refreshes itself from: the live flow per unit, the
queues and their consumers, the connectors' health, and the dead letters waiting.

Everything is cut to the operator's units on the server: the page's script only draws.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bus.console.flow import Flow
from bus.console.guard import account_of
from bus.console.pages import Pages
from bus.console.status import StatusBoard
from bus.ops import DeadLetters

NO_STORE: Final = {"cache-control": "no-store"}


class Overview:
    def __init__(self, flow: Flow, letters: DeadLetters, status: StatusBoard, pages: Pages) -> None:
        self.flow = flow
        self.letters = letters
        self.status = status
        self.pages = pages

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/api/flow", self.api_flow, methods=["GET"]),
            Route("/api/status", self.api_status, methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        return self.pages.render(request, "overview.html", {})

    async def api_flow(self, request: Request) -> Response:
        view = self.flow.view(account_of(request).units)
        return JSONResponse(view, headers=NO_STORE)

    async def api_status(self, request: Request) -> Response:
        operator = account_of(request).operator()
        status, counts = await asyncio.gather(
            self.status.read(operator), asyncio.to_thread(self.letters.counts, operator)
        )
        dead = [
            {"unit": unit, "reason": reason, "count": count}
            for (unit, reason), count in sorted(counts.items())
        ]
        return JSONResponse({**status, "dead_letters": dead}, headers=NO_STORE)
