"""The simulator as one ASGI app: the portal's endpoints and the operator's, inside the fault
injection, with the store opened for as long as the app is served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.types import ASGIApp

from bus.portal_sim.control import control_routes
from bus.portal_sim.faults import FaultInjection, quiet_injected_resets
from bus.portal_sim.portal import PORTAL_PATHS, Portal
from bus.portal_sim.simulator import Options, Simulator


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

    app = Starlette(routes=[*Portal(sim).routes(), *control_routes(sim)], lifespan=lifespan)
    # Outermost, so that a cut connection is cut by the server itself, past every handler.
    return FaultInjection(app, sim.faults, sim.stats, PORTAL_PATHS)
