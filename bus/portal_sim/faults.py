"""Fault injection: what a real portal and the networks before it do to a client.

Set at run time with `PUT /_sim/faults` and applied, as ASGI middleware around the whole app,
to the portal's endpoints only (`/auth`, `/integration`, `/share`): the operator endpoints
always answer. Per call, in this order:

- latency: `latency_ms`, plus up to `latency_jitter_ms`, before anything else;
- down: every call answers 503, for outage tests;
- throttle: 429 with `Retry-After: retry_after`, for the next `throttle_next` calls and then a
  share `throttle_rate` of them (a burst is `throttle_next`);
- error: `error_status` (503) for `error_next` calls, then a share `error_rate`;
- stall: hold the call `stall_seconds`, longer than a client's timeout, then answer;
- reset: cut the connection in the middle of the answer, as a proxy that dies does; httpx
  raises RemoteProtocolError ("peer closed connection without sending complete message body").

Session faults are set through the same `PUT`: `session_ttl` and `drop_sessions` (`control.py`).
Throttled and failed calls change nothing. A stall or a reset comes, by default, after the
call was applied: the client cannot tell that it was, which is the case its retries must get
right (`stall_after_apply`, `reset_after_apply`: false to hold or cut before applying).
Every injected fault is counted in the stats, by kind.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.portal_sim.stats import Stats

Share = float  # of calls, 0 to 1


class FaultSettings(BaseModel):
    """The faults in force; `*_next` count down as calls get their fault."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    down: bool = False
    latency_ms: float = Field(0, ge=0, le=600_000)
    latency_jitter_ms: float = Field(0, ge=0, le=600_000)
    throttle_rate: Share = Field(0, ge=0, le=1)
    throttle_next: int = Field(0, ge=0)
    retry_after: int = Field(1, ge=0, le=86_400, description="Retry-After of a 429, seconds")
    error_rate: Share = Field(0, ge=0, le=1)
    error_next: int = Field(0, ge=0)
    error_status: int = Field(503, ge=500, le=599)
    stall_rate: Share = Field(0, ge=0, le=1)
    stall_next: int = Field(0, ge=0)
    stall_seconds: float = Field(30, ge=0, le=3600)
    stall_after_apply: bool = True
    reset_rate: Share = Field(0, ge=0, le=1)
    reset_next: int = Field(0, ge=0)
    reset_after_apply: bool = True
    seed: int | None = Field(None, description="Seeds the draws, for a repeatable run")


_NONE: Final = FaultSettings()


class Plan(NamedTuple):
    """The faults one call gets."""

    latency: float = 0.0  # seconds
    down: bool = False
    throttle: bool = False
    error: bool = False
    stall: float = 0.0  # seconds
    reset: bool = False


_NO_FAULT: Final = Plan()


class Faults:
    def __init__(self) -> None:
        self.settings = _NONE
        self._rng = random.Random()

    def update(self, changes: dict[str, Any], clear: bool = False) -> FaultSettings:
        """Change the given settings and keep the others (or, with `clear`, start from no
        fault); raises ValidationError and then changes nothing."""
        base = _NONE if clear else self.settings
        settings = FaultSettings.model_validate({**base.model_dump(), **changes})
        self.settings = _NONE if settings == _NONE else settings  # back on the fast path
        if "seed" in changes:
            self._rng.seed(self.settings.seed)
        return self.settings

    def clear(self) -> None:
        self.settings = _NONE

    def draw(self) -> Plan:
        s = self.settings
        if s is _NONE:
            return _NO_FAULT  # the benchmarks' case: no draw, no allocation
        latency = (s.latency_ms + s.latency_jitter_ms * self._rng.random()) / 1000
        if s.down:
            return Plan(latency, down=True)
        if self._hit("throttle", s.throttle_next, s.throttle_rate):
            return Plan(latency, throttle=True)
        if self._hit("error", s.error_next, s.error_rate):
            return Plan(latency, error=True)
        stall = s.stall_seconds if self._hit("stall", s.stall_next, s.stall_rate) else 0.0
        return Plan(latency, stall=stall, reset=self._hit("reset", s.reset_next, s.reset_rate))

    def _hit(self, kind: str, pending: int, rate: Share) -> bool:
        if pending:
            self.settings = self.settings.model_copy(update={f"{kind}_next": pending - 1})
            return True
        return rate > 0 and self._rng.random() < rate


class InjectedReset(Exception):
    """Raised after the answer started: the server then cuts the connection."""


class FaultInjection:
    """The ASGI middleware applying `Faults` to the calls on `paths`."""

    def __init__(self, app: ASGIApp, faults: Faults, stats: Stats, paths: frozenset[str]) -> None:
        self.app = app
        self.faults = faults
        self.stats = stats
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"].strip("/")
        self.stats.call(endpoint)
        plan = self.faults.draw()
        if plan is _NO_FAULT:
            await self.app(scope, receive, send)
            return
        settings = self.faults.settings
        if plan.latency:
            self.stats.fault("latency")
            await asyncio.sleep(plan.latency)
        if plan.down:
            self.stats.fault("down")
            self.stats.answered(endpoint, "", 503)
            await _answer(send, 503, b"the portal is down (simulated outage)")
            return
        if plan.throttle:
            self.stats.fault("throttle")
            self.stats.answered(endpoint, "", 429)
            retry_after = str(settings.retry_after).encode()
            await _answer(send, 429, b"too many requests", [(b"retry-after", retry_after)])
            return
        if plan.error:
            self.stats.fault("error")
            self.stats.answered(endpoint, "", settings.error_status)
            await _answer(send, settings.error_status, b"simulated server error")
            return
        if plan.stall:
            self.stats.fault("stall")
            if settings.stall_after_apply:
                send = _held(send, plan.stall)
            else:
                receive = await _stalled(receive, plan.stall)
        if plan.reset:
            self.stats.fault("reset")
            if not settings.reset_after_apply:
                self.stats.answered(endpoint, "", "reset")
                await _start(send, 200, [(b"content-length", b"64")])
                raise InjectedReset
            send = _cut(send)
        await self.app(scope, receive, send)


async def _start(send: Send, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _answer(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    length = str(len(body)).encode()
    base = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", length)]
    await _start(send, status, [*base, *headers])
    await send({"type": "http.response.body", "body": body})


def _held(send: Send, seconds: float) -> Send:
    """The answer, held back `seconds` before its first byte."""

    async def held(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(seconds)
        await send(message)

    return held


async def _stalled(receive: Receive, seconds: float) -> Receive:
    """The request, read whole and then held `seconds`, so that the client gone by then does
    not stop it from being applied: a request stuck in a queue on the way to the portal."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await asyncio.sleep(seconds)

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


def _cut(send: Send) -> Send:
    """The answer's head goes out, then the connection is cut before its body."""

    async def cut(message: Message) -> None:
        await send(message)
        if message["type"] == "http.response.start":
            raise InjectedReset

    return cut


class _QuietResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedReset))


def quiet_injected_resets() -> None:
    """uvicorn logs a traceback for each exception that cuts a connection: not for ours."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietResets) for f in logger.filters):
        logger.addFilter(_QuietResets())
