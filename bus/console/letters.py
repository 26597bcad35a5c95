"""The dead-letter browser: the list (filtered by unit, reason and status), one message
(reason, error, attempts, headers, the body with personal data masked), and replay or
discard, of one message, of those ticked, or of every one a filter selects, after a
confirmation page that says how many.

Everything goes through `bus.ops.DeadLetters` with the logged-in operator: it decides what
the operator may see and do (a unit of someone else's is `Forbidden`, answered 403) and it
writes the audit log. The store is synchronous, so its calls run in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.console.guard import account_of
from bus.console.pages import Pages
from bus.ops import DeadLetters, Operator

PAGE: Final = 50
STATUSES: Final = ("waiting", "replayed", "discarded")
ACTIONS: Final = ("replay", "discard")


class LetterPages:
    def __init__(self, letters: DeadLetters, pages: Pages) -> None:
        self.letters = letters
        self.pages = pages

    def routes(self) -> list[Route]:
        return [
            Route("/deadletters", self.index, methods=["GET"]),
            Route("/deadletters/confirm", self.confirm, methods=["GET"]),
            Route("/deadletters/act", self.act, methods=["POST"]),
            Route("/deadletters/{id:path}/replay", self.replay_one, methods=["POST"]),
            Route("/deadletters/{id:path}/discard", self.discard_one, methods=["POST"]),
            Route("/deadletters/{id:path}", self.show, methods=["GET"]),
        ]

    async def index(self, request: Request, notice: str | None = None) -> Response:
        operator = account_of(request).operator()
        unit, reason, status = _filters(request.query_params)
        offset = max(0, _int(request.query_params.get("offset"), 0))
        letters = await asyncio.to_thread(
            self.letters.list,
            operator,
            unit=unit,
            reason=reason,
            status=status,
            limit=PAGE + 1,
            offset=offset,
        )
        counts = await asyncio.to_thread(self.letters.counts, operator)
        context = {
            "letters": letters[:PAGE],
            "more": len(letters) > PAGE,
            "offset": offset,
            "page": PAGE,
            "unit": unit,
            "reason": reason,
            "status": status,
            "statuses": STATUSES,
            "units": sorted({u for u, _ in counts}),
            "reasons": sorted({r for _, r in counts}),
            "notice": notice,
        }
        return self.pages.render(request, "deadletters.html", context)

    async def show(self, request: Request, notice: str | None = None) -> Response:
        operator = account_of(request).operator()
        letter = await asyncio.to_thread(self.letters.get, operator, request.path_params["id"])
        body = orjson.dumps(letter.masked_body(), option=orjson.OPT_INDENT_2).decode()
        headers = orjson.dumps(
            letter.masked_headers(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        ).decode()
        context = {"letter": letter, "body": body, "headers": headers, "notice": notice}
        return self.pages.render(request, "deadletter.html", context)

    async def confirm(self, request: Request) -> Response:
        """What a bulk action by filter would touch, before it is done."""
        operator = account_of(request).operator()
        action = request.query_params.get("action", "")
        if action not in ACTIONS:
            return self.pages.render(
                request, "error.html", {"status": 400, "message": "unknown action"}, 400
            )
        unit, reason, _ = _filters(request.query_params)
        ids = await asyncio.to_thread(self.letters.select, operator, unit, reason)
        context = {"action": action, "unit": unit, "reason": reason, "ids": ids}
        return self.pages.render(request, "confirm.html", context)

    async def act(self, request: Request) -> Response:
        """Replay or discard the ticked messages (`id` fields), or every waiting one the
        filter selects (`unit`, `reason`, and `count`, the number the operator confirmed:
        when more arrived since, the operator is shown the new number instead)."""
        operator = account_of(request).operator()
        form = await request.form()
        action = str(form.get("action", ""))
        if action not in ACTIONS:
            return self.pages.render(
                request, "error.html", {"status": 400, "message": "unknown action"}, 400
            )
        ids = [str(i) for i in form.getlist("id")]
        target = None
        if not ids and form.get("by") == "filter":
            unit, reason, _ = _filters(form)
            ids = await asyncio.to_thread(self.letters.select, operator, unit, reason)
            if len(ids) != _int(form.get("count"), -1):
                context = {"action": action, "unit": unit, "reason": reason, "ids": ids}
                context["notice"] = "The selection changed since you looked: check it again."
                return self.pages.render(request, "confirm.html", context, 409)
            target = f"unit={unit or '*'} reason={reason or '*'}"
        if not ids:
            return await self.index(request, notice="Nothing was selected.")
        done = await self._do(action, operator, ids, target)
        return await self.index(request, notice=f"{_past(action)} {done} of {len(ids)}.")

    async def replay_one(self, request: Request) -> Response:
        return await self._one(request, "replay")

    async def discard_one(self, request: Request) -> Response:
        return await self._one(request, "discard")

    async def _one(self, request: Request, action: str) -> Response:
        operator = account_of(request).operator()
        done = await self._do(action, operator, [request.path_params["id"]])
        notice = (
            f"{_past(action)}." if done else f"Not {_past(action).lower()}: it was not waiting."
        )
        return await self.show(request, notice=notice)

    async def _do(
        self, action: str, operator: Operator, ids: list[str], target: str | None = None
    ) -> int:
        if action == "replay":
            return await self.letters.replay(operator, ids, target=target)
        return await self.letters.discard(operator, ids, target=target)


def _filters(values: Any) -> tuple[str | None, str | None, str | None]:
    def value(name: str) -> str | None:
        found = values.get(name)
        return str(found).strip() or None if found is not None else None

    status = value("status") or "waiting"
    return value("unit"), value("reason"), status if status in STATUSES else "waiting"


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _past(action: str) -> str:
    return {"replay": "Replayed", "discard": "Discarded"}[action]
