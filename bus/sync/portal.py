"""The national portal's client: the calls of docs/portal-api.md over a pool of keep-alive
connections, paced by the token bucket and guarded by the circuit breaker.

What an answer means for the message behind the call (bus/errors.py decides by class):
- HTTP 200, `error_code` 0: the per-item results, for the sync service to act on;
- a session error (`error_code` 401, or HTTP 401): log in again, once for every caller that
  met it, and repeat the call once;
- HTTP 429: pause the bucket for Retry-After, halve its rate, and repeat the same call. The
  portal is up, so it is no breaker failure; only a call still throttled after
  `max_throttled` retries gives up as unavailable (a spent quota: the breaker should open);
- HTTP 5xx or 408, a timeout, a refused, reset or cut connection, a 200 that is not JSON (a
  proxy's error page): `PortalUnavailable`, transient, and a breaker failure;
- any other answer (another `error_code`, another 4xx, results that do not match the items):
  `PortalProtocolError`, permanent: retrying the same call cannot help, an operator must look.

The session token and the password never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import IntEnum
from types import TracebackType
from typing import Any, Final, Self

import httpx
import orjson
import structlog

from bus.errors import (
    PortalLoginRejected,
    PortalProtocolError,
    PortalUnavailable,
    Withdrawn,
)
from bus.sync.breaker import CircuitBreaker
from bus.sync.ratelimit import TokenBucket

log = structlog.get_logger("bus.sync.portal")

DOSSIER_SERVICE: Final = "DongBoHoSoMC"
PROGRESS_SERVICE: Final = "CapNhatTienDoHoSoMC"
LOOKUP_SERVICE: Final = "TraCuuHoSo"

_SESSION_ERROR: Final = 401
_NOT_FOUND: Final = 3
_MAX_RETRY_AFTER: Final = 300.0  # seconds: a portal asking for an hour gets five minutes
_SHOWN: Final = 300  # characters of a portal's message kept in an error


Guard = Callable[[], bool]


class ItemCode(IntEnum):
    """The portal's verdict on one item (docs/portal-api.md)."""

    APPLIED = 0
    INVALID = 1  # the message names the field and the rule: dead-letter the event
    EXISTS = 2  # a creation of a dossier the portal has: send it again as an update
    MISSING = 3  # an update or progress of a dossier it lacks: send it as a creation


@dataclass(frozen=True, slots=True)
class ItemResult:
    dossier_code: str
    code: int  # an ItemCode, or a code this client does not know
    message: str


class PortalClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float,
        concurrency: int,
        bucket: TokenBucket,
        breaker: CircuitBreaker,
        max_throttled: int = 10,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`timeout`: seconds for each of connect, send, and wait for the answer.
        `concurrency`: calls in flight at most, and pooled connections. `max_throttled`: how
        often one call is repeated after a 429 before it gives up as unavailable.
        `transport`: for tests and proxies; by default httpx's own."""
        self.username = username
        self._password = password
        self._bucket = bucket
        self._breaker = breaker
        self._max_throttled = max_throttled
        # The semaphore, not the pool, bounds calls in flight: waiting for a free connection
        # is no portal failure, so the pool never times out a call (pool=None).
        self._slots = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, pool=None),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"content-type": "application/json"},
            transport=transport,
        )
        self._session: str | None = None
        self._session_until = 0.0  # loop time after which the session is renewed unasked
        self._login = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PortalClient({str(self._http.base_url)!r}, username={self.username!r})"

    async def upsert_dossiers(
        self,
        madonvi: str,
        items: Sequence[dict[str, Any]],
        updating: bool,
        *,
        guard: Guard | None = None,
    ) -> list[ItemResult]:
        """DongBoHoSoMC: create (`updating` False) or update dossiers; one result per item.
        `guard`, asked right before the request leaves (after any wait for the breaker, a
        free slot or a token): False withdraws the call (`Withdrawn`)."""
        fields = {"isUpdating": "True" if updating else "False", "data": items}
        return await self._integration(madonvi, DOSSIER_SERVICE, items, fields, guard)

    async def record_progress(
        self, madonvi: str, items: Sequence[dict[str, Any]], *, guard: Guard | None = None
    ) -> list[ItemResult]:
        """CapNhatTienDoHoSoMC: add processing steps; one result per item."""
        return await self._integration(madonvi, PROGRESS_SERVICE, items, {"data": items}, guard)

    async def lookup(self, madonvi: str, dossier_code: str) -> dict[str, Any] | None:
        """TraCuuHoSo: the portal's dossier item, its progress items under
        "CapNhatTienDoHoSoMC"; None when the portal has no such dossier."""
        fields = {"service": LOOKUP_SERVICE, "MaHoSo": dossier_code}
        answer = await self._call("/share", madonvi, fields)
        code = _error_code(answer)
        if code == _NOT_FOUND:
            return None
        if code != 0:
            raise _refused(LOOKUP_SERVICE, code, answer)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise PortalProtocolError(f"{LOOKUP_SERVICE} answered without a dossier in data")
        return data

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _integration(
        self,
        madonvi: str,
        service: str,
        items: Sequence[dict[str, Any]],
        fields: dict[str, Any],
        guard: Guard | None = None,
    ) -> list[ItemResult]:
        if not items:
            return []
        answer = await self._call("/integration", madonvi, {"service": service, **fields}, guard)
        code = _error_code(answer)
        if code != 0:
            raise _refused(service, code, answer)
        result = answer.get("result")
        if not isinstance(result, list) or len(result) != len(items):
            count = len(result) if isinstance(result, list) else "no"
            raise PortalProtocolError(f"{service} answered {count} results for {len(items)} items")
        return [_item_result(service, item, line) for item, line in zip(items, result, strict=True)]

    async def _call(
        self, path: str, madonvi: str, fields: dict[str, Any], guard: Guard | None = None
    ) -> dict[str, Any]:
        """One call, from the breaker's leave to an answer the portal gave."""
        await self._breaker.wait_until_closed_or_probe()
        async with self._slots:
            started = time.perf_counter()
            try:
                answer = await self._with_session(path, madonvi, fields, guard)
            except PortalUnavailable as error:
                self._breaker.failure()
                log.warning("portal unavailable", path=path, madonvi=madonvi, error=str(error))
                raise
            except PortalProtocolError:
                self._breaker.success()  # it answered: the call is at fault, not the portal
                raise
        self._breaker.success()
        self._bucket.speed_up()
        log.debug(
            "portal call",
            path=path,
            service=fields.get("service"),
            madonvi=madonvi,
            ms=round((time.perf_counter() - started) * 1000, 1),
            **({"items": len(fields["data"])} if "data" in fields else {}),
        )
        return answer

    async def _with_session(
        self, path: str, madonvi: str, fields: dict[str, Any], guard: Guard | None = None
    ) -> dict[str, Any]:
        token = await self._token(madonvi, stale=None)
        body = {"session": token, "madonvi": madonvi, **fields}
        answer = await self._post(path, madonvi, body, guard)
        if _error_code(answer) != _SESSION_ERROR:
            return answer
        log.info("portal session rejected: logging in again", madonvi=madonvi)
        token = await self._token(madonvi, stale=token)
        body = {"session": token, "madonvi": madonvi, **fields}
        answer = await self._post(path, madonvi, body, guard)
        if _error_code(answer) == _SESSION_ERROR:
            raise PortalUnavailable("the portal refused a session it had just opened")
        return answer

    async def _token(self, madonvi: str, stale: str | None) -> str:
        """A live session: the current one, unless it is `stale` or due to expire. One
        caller logs in; the others, waiting on the lock, then take its session."""
        async with self._login:
            now = asyncio.get_running_loop().time()
            if self._session is None or self._session == stale or now >= self._session_until:
                self._session = None  # a failed login must not leave the stale one in use
                self._session, self._session_until = await self._log_in(madonvi)
            return self._session

    async def _log_in(self, madonvi: str) -> tuple[str, float]:
        body = {"username": self.username, "password": self._password}
        answer = await self._post("/auth", madonvi, body)
        code = _error_code(answer)
        if code == _SESSION_ERROR:
            log.error("portal refused the credentials", username=self.username, dstcode=madonvi)
            raise PortalLoginRejected(
                f"the portal refused the credentials of {self.username!r}: {_message(answer)}"
            )
        if code != 0:
            raise _refused("auth", code, answer)
        token = answer.get("session")
        if not isinstance(token, str) or not token:
            raise PortalProtocolError("the portal's login answer has no session")
        expires_in = answer.get("expires_in")
        lifetime = float("inf")
        if isinstance(expires_in, int | float) and expires_in > 0:
            lifetime = float(expires_in)
        log.info("logged in to the portal", username=self.username, expires_in=expires_in)
        # Renew a little before the portal would refuse it, rather than lose a call to it.
        return token, asyncio.get_running_loop().time() + lifetime - min(60.0, lifetime / 10)

    async def _post(
        self, path: str, madonvi: str, body: dict[str, Any], guard: Guard | None = None
    ) -> dict[str, Any]:
        """POST until the portal answers anything but 429; its JSON object."""
        content = orjson.dumps(body)
        for throttled in range(self._max_throttled + 1):
            await self._bucket.acquire()
            if guard is not None and not guard():
                raise Withdrawn(f"{path}: withdrawn before it was sent")
            try:
                response = await self._http.post(
                    path, content=content, headers={"dstcode": madonvi}
                )
            except httpx.RequestError as error:
                raise PortalUnavailable(
                    f"{path}: {type(error).__name__} {error}".strip()
                ) from error
            if response.status_code != 429:
                return _answer(path, response)
            delay = _retry_after(response.headers.get("retry-after"))
            self._bucket.slow_down(delay)
            log.warning(
                "portal throttled: slowing down",
                path=path,
                retry_after=delay,
                rate=round(self._bucket.rate, 2),
                throttled=throttled + 1,
            )
        raise PortalUnavailable(
            f"{path}: still throttled (429) after {self._max_throttled} retries"
        )


def _answer(path: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status == 401:
        # A gateway in front of the portal may refuse a session with the HTTP status
        # instead: the same thing as the portal's own error_code 401.
        return {"error_code": _SESSION_ERROR, "message": f"HTTP 401 {response.text[:_SHOWN]}"}
    if status == 408 or status >= 500:
        raise PortalUnavailable(f"{path}: HTTP {status}")
    if status != 200:
        raise PortalProtocolError(f"{path}: HTTP {status} {response.text[:_SHOWN]}".strip())
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise PortalUnavailable(f"{path}: the answer is not JSON (a proxy's page?)") from None
    if not isinstance(answer, dict):
        raise PortalProtocolError(f"{path}: the answer is not a JSON object")
    return answer


def _error_code(answer: Mapping[str, Any]) -> int:
    # 0 as a number, or as the older portal's strings "0" and "00".
    code = answer.get("error_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    raise PortalProtocolError(f"the portal's answer has no error_code: {code!r}")


def _message(answer: Mapping[str, Any]) -> str:
    return str(answer.get("message", ""))[:_SHOWN]


def _refused(service: str, code: int, answer: Mapping[str, Any]) -> PortalProtocolError:
    return PortalProtocolError(
        f"the portal refused {service}: error_code {code}: {_message(answer)}"
    )


def _item_result(service: str, item: Mapping[str, Any], line: object) -> ItemResult:
    if not isinstance(line, dict):
        raise PortalProtocolError(f"{service} answered a result that is not an object")
    sent, answered = item.get("MaHoSo"), line.get("MaHoSo")
    # Results come in the order of the items; one out of step would be recorded against the
    # wrong dossier, so a mismatch stops everything rather than being believed.
    if isinstance(sent, str) and isinstance(answered, str) and answered and answered != sent:
        raise PortalProtocolError(f"{service} answered {answered} where {sent} was sent")
    return ItemResult(
        dossier_code=str(sent if sent is not None else answered),
        code=_error_code(line),
        message=_message(line),
    )


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds, either spelling (RFC 9110); 1 s when absent or unreadable."""
    if value is None:
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 1.0
    if not math.isfinite(seconds):
        return 1.0
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)
