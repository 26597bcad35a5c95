"""The portal's API, as docs/portal-api.md fixes it: `/auth`, `/integration`, `/share`.

A call is judged and applied without yielding to another call (`store.py` says why), so the
answers are those of a portal applying calls one at a time. Each call logs one line: at debug
level, or at warning when the call or one of its items was invalid. "Already exists" and "does
not exist" are not: the sync service meets them every day and answers them by resending.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.portal_sim import envelope
from bus.portal_sim.answers import (
    BAD_SESSION,
    ITEM_MESSAGES,
    NOT_FOUND,
    UNAUTHORIZED,
    WRONG_CREDENTIALS,
    EnvelopeError,
    ItemCode,
    json_response,
    refused,
)
from bus.portal_sim.judge import (
    Refusal,
    dossier_spelled_by_portal,
    judge_dossier,
    judge_step,
    result_code,
    step_spelled_by_portal,
)
from bus.portal_sim.sessions import Check
from bus.portal_sim.simulator import Simulator
from bus.portal_sim.store import DOSSIER_SERVICE, PROGRESS_SERVICE
from schemas.errors import ContractError
from schemas.identifiers import DossierCode

LOOKUP_SERVICE: Final = "TraCuuHoSo"
PORTAL_PATHS: Final = frozenset({"/auth", "/integration", "/share"})
PROGRESS_LIST: Final = PROGRESS_SERVICE  # TraCuuHoSo answers the steps under this name

log = structlog.get_logger("bus.portal_sim")

Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


class Portal:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        handlers = {"auth": self.auth, "integration": self.integration, "share": self.share}
        return [
            Route(f"/{name}", self._endpoint(name, handle), methods=["POST"])
            for name, handle in handlers.items()
        ]

    def _endpoint(self, name: str, handle: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The handler, with its log line, and envelope errors answered as the portal does."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            context: dict[str, Any] = {}  # what the handler learnt, for the log line
            try:
                response = await handle(request, context)
            except EnvelopeError as error:
                self.sim.stats.refused[str(error.error_code)] += 1
                self.sim.stats.answered(name, context.get("service", ""), error.error_code)
                log.warning(
                    "portal_call_refused",
                    endpoint=name,
                    error_code=error.error_code,
                    message=error.message,
                    ms=_ms(started),
                    **context,
                )
                return refused(error)
            self.sim.stats.answered(name, context.get("service", ""), 0)
            line = log.warning if context.get("invalid") else log.debug
            line("portal_call", endpoint=name, ms=_ms(started), **context)
            return response

        return endpoint

    def _check_session(self, body: dict[str, Any]) -> None:
        check = self.sim.sessions.check(envelope.session_token(body))
        if check is Check.EXPIRED:
            self.sim.stats.fault("session_expired")
        if check is not Check.LIVE:
            raise EnvelopeError(UNAUTHORIZED, BAD_SESSION)

    async def auth(self, request: Request, context: dict[str, Any]) -> Response:
        body = await envelope.read_object(request)
        dstcode = envelope.caller(request)
        username, password = body.get("username"), body.get("password")
        context.update(dstcode=str(dstcode), username=str(username)[:64])
        expected = self.sim.options.password
        if not (
            isinstance(username, str)
            and username
            and isinstance(password, str)
            and secrets.compare_digest(password.encode(), expected.encode())
        ):
            raise EnvelopeError(UNAUTHORIZED, WRONG_CREDENTIALS)
        session = self.sim.sessions.open(username, str(dstcode))
        ttl = self.sim.sessions.ttl
        expires_in = int(ttl) if ttl == int(ttl) else ttl
        return json_response(
            {"error_code": 0, "message": "Thành công", "session": session.token,
             "expires_in": expires_in}
        )  # fmt: skip

    async def integration(self, request: Request, context: dict[str, Any]) -> Response:
        body = await envelope.read_object(request)
        envelope.caller(request)
        self._check_session(body)
        madonvi = envelope.agency(body)
        service = envelope.service(body, (DOSSIER_SERVICE, PROGRESS_SERVICE))
        context.update(service=service, madonvi=str(madonvi))
        unit, now = madonvi.unit, time.time()
        store = self.sim.store
        if service == DOSSIER_SERVICE:
            updating = envelope.is_updating(body)
            raw = envelope.items(body)
            context["is_updating"] = updating
            dossiers = [judge_dossier(item, unit) for item in raw]
            codes = store.apply_dossiers(unit, dossiers, updating, now)
            refusals = _refusals(dossiers)
        else:
            raw = envelope.items(body)
            steps = [judge_step(item, unit) for item in raw]
            codes = store.apply_steps(unit, steps, now)
            refusals = _refusals(steps)
        self.sim.stats.judged(service, codes)
        result = [
            {
                "MaHoSo": result_code(item),
                "error_code": int(code),
                "message": refusal or ITEM_MESSAGES[code],
            }
            for item, refusal, code in zip(raw, refusals, codes, strict=True)
        ]
        rejected = [line for line in result if line["error_code"]]
        invalid = [line for line in rejected if line["error_code"] == ItemCode.INVALID]
        context.update(items=len(result), rejected=len(rejected), invalid=len(invalid))
        if invalid:
            context.update(first_invalid=invalid[0])  # its message is masked already
        message = (
            f"Thành công: {len(result)} hồ sơ"
            if not rejected
            else f"{len(result) - len(rejected)}/{len(result)} thành công, {len(rejected)} lỗi"
        )
        return json_response({"error_code": 0, "message": message, "result": result})

    async def share(self, request: Request, context: dict[str, Any]) -> Response:
        body = await envelope.read_object(request)
        envelope.caller(request)
        self._check_session(body)
        envelope.agency(body)
        context["service"] = envelope.service(body, (LOOKUP_SERVICE,))
        try:
            code = DossierCode.parse(envelope.text(body, "MaHoSo"))
        except ContractError as error:
            raise EnvelopeError.malformed(f"MaHoSo: {error.problems[0].rule}") from None
        context["dossier_code"] = str(code)
        record = self.sim.store.record(code)
        if record is None:
            return json_response({"error_code": int(ItemCode.MISSING), "message": NOT_FOUND})
        data = dossier_spelled_by_portal(record.item)
        steps = self.sim.store.steps([code])[code]
        data[PROGRESS_LIST] = [step_spelled_by_portal(step) for step in steps]
        return json_response({"error_code": 0, "message": "Thành công", "data": data})


def _refusals(verdicts: Sequence[object]) -> list[str | None]:
    """The message of each refused item, None for the others."""
    return [v.message if isinstance(v, Refusal) else None for v in verdicts]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
