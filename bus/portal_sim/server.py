"""Serving the simulator with uvicorn: as `bus portal-sim`, or in a background thread for tests.

httptools parses HTTP and uvloop runs the loop when installed, the fastest pair uvicorn has.
The server keeps idle connections 75 s, longer than clients keep theirs (httpx: 5 s): when the
server closes first, a client may send on a connection that is being closed, and a benchmark
would count errors that a real portal behind a proxy would not cause.
"""

from __future__ import annotations

from typing import Any, Final

import uvicorn

from bus.portal_sim.app import create_app
from bus.portal_sim.simulator import Options
from bus.serving import BackgroundServer

KEEP_ALIVE: Final = 75  # seconds


_SETTINGS: Final[dict[str, Any]] = {
    "http": "httptools",
    "loop": "auto",
    "lifespan": "on",
    "access_log": False,  # one structured line per call is the simulator's own
    "timeout_keep_alive": KEEP_ALIVE,
    "backlog": 2048,
}


def _config(options: Options, **settings: Any) -> uvicorn.Config:
    return uvicorn.Config(create_app(options), **_SETTINGS, **settings)


def serve(options: Options, host: str, port: int, log_level: str) -> None:
    """Serve in the foreground until SIGINT or SIGTERM."""
    uvicorn.Server(_config(options, host=host, port=port, log_level=log_level.lower())).run()


class InProcessServer(BackgroundServer):
    """The simulator in a background thread of this process, for tests:

        with InProcessServer(Options(db=tmp_path / "portal.sqlite3")) as url:
            httpx.post(f"{url}/auth", ...)

    Port 0 (the default) takes a free port; `url` says which. Stopping closes the store.
    """

    def __init__(self, options: Options, host: str = "127.0.0.1", port: int = 0) -> None:
        self.options = options
        super().__init__(create_app(options), host, port, name="portal-sim", **_SETTINGS)
