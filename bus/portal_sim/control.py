"""The operator's and the tests' endpoints, under `/_sim/`, and `/healthz`.

- `GET /_sim/dossiers/{code}`: its record, progress and full history, items as sent;
- `GET /_sim/dossiers?unit=H29&after=&limit=1000`: records in code order, page by page: pass
  the answer's `next` as `after` until it is null;
- `GET /_sim/units`: per unit, dossiers created, updates applied, steps kept, items refused;
- `GET /_sim/stats`: this run's calls, items by service and error_code, faults by kind;
- `GET /_sim/faults`; `PUT /_sim/faults` with the settings to change (`faults.FaultSettings`;
  the others are kept), and `"clear": true` (no fault first), `"session_ttl": seconds`,
  `"drop_sessions": true`. A wrong setting is refused with 400 and changes nothing;
- `POST /_sim/reset`: an empty portal, as on a new file: no dossier, session, fault or count.

Faults never apply here, and these answer with plain HTTP statuses: they are no portal's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.portal_sim.answers import json_response
from bus.portal_sim.simulator import Simulator
from bus.portal_sim.store import Applied, Record

PAGE: Final = 1000
PAGE_MAX: Final = 10_000
_SESSION_KEYS: Final = ("session_ttl", "drop_sessions", "clear")


def control_routes(sim: Simulator) -> list[Route]:
    async def healthz(request: Request) -> Response:
        # The simulator answers even while it plays an outage: "down" says it plays one.
        return json_response({"status": "ok", "down": sim.faults.settings.down})

    async def dossier(request: Request) -> Response:
        code = request.path_params["code"]
        record = sim.store.record(code)
        if record is None:
            return _error(404, f"no dossier {code!r}")
        view = _record(record, sim.store.steps([code])[code])
        view["history"] = [_applied(row) for row in sim.store.history(code)]
        return json_response(view)

    async def dossiers(request: Request) -> Response:
        """A page of records, in code order: follow `next` (as `after`) until it is null."""
        query = request.query_params
        try:
            limit = max(1, min(int(query.get("limit", PAGE)), PAGE_MAX))
        except ValueError:
            return _error(400, "limit must be a whole number")
        unit = query.get("unit") or None
        records = sim.store.records(unit, query.get("after", ""), limit)
        steps = sim.store.steps([r.code for r in records])
        page = [_record(r, steps[r.code]) for r in records]
        last = records[-1].code if len(records) == limit else None
        return json_response({"unit": unit, "dossiers": page, "next": last})

    async def units(request: Request) -> Response:
        return json_response(sim.store.units())

    async def stats(request: Request) -> Response:
        return json_response(sim.stats.snapshot(sessions=sim.sessions.live()))

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                changes = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return _error(400, "the body must be a JSON object")
            if not isinstance(changes, dict):
                return _error(400, "the body must be a JSON object")
            if problem := _change_faults(sim, changes):
                return _error(400, problem)
        return json_response(_faults(sim))

    async def reset(request: Request) -> Response:
        sim.reset()
        return json_response(_faults(sim))

    return [
        Route("/healthz", healthz),
        Route("/_sim/dossiers", dossiers),
        Route("/_sim/dossiers/{code}", dossier),
        Route("/_sim/units", units),
        Route("/_sim/stats", stats),
        Route("/_sim/faults", faults, methods=["GET", "PUT"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]


def _change_faults(sim: Simulator, changes: dict[str, Any]) -> str | None:
    """Apply `PUT /_sim/faults`: everything, or nothing and the reason."""
    ttl = changes.get("session_ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        return "session_ttl must be a number of seconds above 0"
    for flag in ("drop_sessions", "clear"):
        if not isinstance(changes.get(flag, False), bool):
            return f"{flag} must be true or false"
    try:
        sim.faults.update(
            {k: v for k, v in changes.items() if k not in _SESSION_KEYS},
            clear=changes.get("clear", False),
        )
    except ValidationError as error:
        return "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False)
        )
    if ttl is not None:
        sim.sessions.ttl = float(ttl)
    if changes.get("drop_sessions"):
        sim.stats.fault("sessions_dropped", sim.sessions.drop_all())
    return None


def _faults(sim: Simulator) -> dict[str, Any]:
    return {
        **sim.faults.settings.model_dump(),
        "session_ttl": sim.sessions.ttl,
        "sessions_live": sim.sessions.live(),
    }


def _record(record: Record, steps: list[bytes]) -> dict[str, Any]:
    return {
        "code": record.code,
        "unit": record.unit,
        "status": record.status,
        "version": record.version,
        "created_at": _moment(record.created_at),
        "updated_at": _moment(record.updated_at),
        "item": orjson.Fragment(record.item),
        "progress": [orjson.Fragment(step) for step in steps],
    }


def _applied(row: Applied) -> dict[str, Any]:
    return {
        "id": row.id,
        "applied_at": _moment(row.applied_at),
        "service": row.service,
        "is_updating": row.is_updating,
        "status": row.status,
        "changed": row.changed,
        "item": orjson.Fragment(row.item),
    }


def _moment(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)
