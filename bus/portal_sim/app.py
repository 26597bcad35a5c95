"""The simulator as one ASGI app: the portal's endpoints and the operator's, inside the fault
injection, with the store opened for as long as the app is served; and `/metrics` and
`/readyz` (ready while its SQLite store answers) beside its own `/healthz`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.types import ASGIApp

from bus.portal_sim.control import control_routes
from bus.portal_sim.faults import FaultInjection, quiet_injected_resets
from bus.portal_sim.metrics import simulator_registry
from bus.portal_sim.portal import PORTAL_PATHS, Portal
from bus.portal_sim.simulator import Options, Simulator
from bus.probes import metrics_route, readyz_route


def create_app(options: Options) -> ASGIApp:
    sim = Simulator(options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sim.open()
        quiet_injected_resets()  # here: after the server has configured its logging
        try:
            yield
        finally:
            sim.close()

    async def store() -> None:
        sim.store.ping()

    probes = [metrics_route(simulator_registry(sim)), readyz_route({"store": store})]
    app = Starlette(
        routes=[*Portal(sim).routes(), *control_routes(sim), *probes], lifespan=lifespan
    )
    # Outermost, so that a cut connection is cut by the server itself, past every handler.
    return FaultInjection(app, sim.faults, sim.stats, PORTAL_PATHS)
