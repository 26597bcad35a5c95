"""What Prometheus and an orchestrator ask a running service: `/metrics`, `/healthz`, `/readyz`.

- `GET /metrics`: the process's metrics in Prometheus's text format;
- `GET /healthz`: 200 "ok" while the process serves at all (liveness: restart it if not);
- `GET /readyz`: runs the service's named readiness checks together, each bounded by a short
  timeout, and answers 200 `{"ready": true, "checks": {"broker": "ok", ...}}`, or 503 with
  the reason of each check that failed (readiness: send it no work until it is 200).

A readiness check is an async function of no argument that returns when its part answers
and raises when it does not; the error's text is the reason shown. The checks run on the
service's own event loop, so they may touch its connection and its store directly.

A service that already serves HTTP mounts `probe_routes(checks)` (the console) or the routes
it lacks (the portal simulator). The others run a `ProbeServer` on a port of their own, as a
task of their event loop, started and stopped with the service:

    async with ProbeServer({"broker": broker_open, "store": store.ping}, port=9101) as url:
        ...
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bus.serving import LoopServer

if TYPE_CHECKING:
    from bus.settings import Settings

log = structlog.get_logger(__name__)

Check = Callable[[], Awaitable[object]]

CHECK_TIMEOUT: Final = 2.0  # seconds; a probe is asked every few seconds and must not pile up
SYNC_METRICS_PORT: Final = 9101  # `bus sync run`'s default
CONNECTOR_METRICS_PORT: Final = 9102  # `bus connector run`'s default


class NotReady(Exception):
    """Raised by a readiness check: its text says what is not ready."""


def metrics_route(registry: CollectorRegistry = REGISTRY) -> Route:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])


def healthz_route() -> Route:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Route("/healthz", healthz, methods=["GET"])


def readyz_route(checks: Mapping[str, Check], timeout: float = CHECK_TIMEOUT) -> Route:
    async def readyz(request: Request) -> Response:
        results = await readiness(checks, timeout)
        ready = all(result == "ok" for result in results.values())
        return JSONResponse({"ready": ready, "checks": results}, 200 if ready else 503)

    return Route("/readyz", readyz, methods=["GET"])


def probe_routes(
    checks: Mapping[str, Check],
    *,
    registry: CollectorRegistry = REGISTRY,
    timeout: float = CHECK_TIMEOUT,
) -> list[Route]:
    """`/metrics`, `/healthz` and `/readyz`, to mount in a service's own Starlette app."""
    return [metrics_route(registry), healthz_route(), readyz_route(checks, timeout)]


async def readiness(checks: Mapping[str, Check], timeout: float = CHECK_TIMEOUT) -> dict[str, str]:
    """Every check run at once: "ok", or why not, by name."""
    names = list(checks)
    outcomes = await asyncio.gather(*(_run(checks[name], timeout) for name in names))
    return dict(zip(names, outcomes, strict=True))


async def _run(check: Check, timeout: float) -> str:
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as error:  # whatever it is, it is the reason this part is not ready
        return str(error) or type(error).__name__
    return "ok"


class ProbeServer(LoopServer):
    """The probe endpoints on `host:port`, served as a task of the running event loop
    (`bus/serving.py`). Port 0 takes a free port; `url` says which."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        registry: CollectorRegistry = REGISTRY,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        app = Starlette(routes=probe_routes(checks, registry=registry, timeout=timeout))
        super().__init__(app, host, port, name="probes", lifespan="off")

    async def start(self) -> str:
        url = await super().start()
        log.info("probes serving", url=url, endpoints="/metrics /healthz /readyz")
        return url


def service_port(settings: Settings, given: int | None, default: int) -> int | None:
    """The probe port of a service command: `--metrics-port`, else BUS_METRICS_PORT, else the
    command's default when it is free (`default_port`)."""
    if given is not None:
        return given
    if settings.metrics_port is not None:
        return settings.metrics_port
    return default_port(settings.metrics_host, default)


def default_port(host: str, port: int) -> int | None:
    """A service's default probe port if it is free, else None with a warning: a second
    service of the same kind on one host keeps running, without probes, until it is given a
    port of its own. A port set on purpose is not checked here: taken, it fails the start."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as `start` binds
        try:
            sock.bind((host, port))
        except OSError:
            log.warning(
                "default metrics port taken: no /metrics, /healthz or /readyz for this process;"
                " give it one with --metrics-port or BUS_METRICS_PORT",
                host=host,
                port=port,
            )
            return None
    return port
