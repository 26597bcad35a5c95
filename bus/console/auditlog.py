"""The audit log page: every operator action (who, when, what, how many, and whether it was
done, refused or failed), latest first; an operator of some units sees the entries about
them, a national operator everything."""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.console.guard import account_of
from bus.console.pages import Pages
from bus.ops import DeadLetters

PAGE: Final = 100


class AuditPage:
    def __init__(self, letters: DeadLetters, pages: Pages) -> None:
        self.letters = letters
        self.pages = pages

    def routes(self) -> list[Route]:
        return [Route("/audit", self.page, methods=["GET"])]

    async def page(self, request: Request) -> Response:
        operator = account_of(request).operator()
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
        except ValueError:
            offset = 0
        entries = await asyncio.to_thread(
            self.letters.audit_log, operator, limit=PAGE + 1, offset=offset
        )
        context = {
            "entries": entries[:PAGE],
            "more": len(entries) > PAGE,
            "offset": offset,
            "page": PAGE,
        }
        return self.pages.render(request, "audit.html", context)
