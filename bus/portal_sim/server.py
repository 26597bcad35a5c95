"""Serving the simulator with uvicorn: in a background thread for tests, or as `bus portal-sim`.

httptools parses HTTP and uvloop runs the loop when installed, the fastest pair uvicorn has.
The server keeps idle connections 75 s, longer than clients keep theirs (httpx: 5 s): when the
server closes first, a client may send on a connection that is being closed, and a benchmark
would count errors that a real portal behind a proxy would not cause.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Final

import uvicorn

from bus.portal_sim.app import create_app
from bus.portal_sim.simulator import Options

KEEP_ALIVE: Final = 75  # seconds


def _config(options: Options, **settings: Any) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(options),
        http="httptools",
        loop="auto",
        lifespan="on",
        access_log=False,  # one structured line per call is the simulator's own
        timeout_keep_alive=KEEP_ALIVE,
        backlog=2048,
        **settings,
    )


def serve(options: Options, host: str, port: int, log_level: str) -> None:
    """Serve in the foreground until SIGINT or SIGTERM."""
    uvicorn.Server(_config(options, host=host, port=port, log_level=log_level.lower())).run()


class InProcessServer:
    """The simulator in a background thread of this process, for tests:

        with InProcessServer(Options(db=tmp_path / "portal.sqlite3")) as url:
            httpx.post(f"{url}/auth", ...)

    Port 0 (the default) takes a free port; `url` says which.
    """

    def __init__(self, options: Options, host: str = "127.0.0.1", port: int = 0) -> None:
        self.options = options
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        """Serve, and return the base URL once the server answers."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        host, port = sock.getsockname()[:2]
        # log_config=None leaves the host process's logging alone; a stalled call must not
        # hold a test's teardown more than a second.
        config = _config(self.options, log_config=None, timeout_graceful_shutdown=1)
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="portal-sim", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("the portal simulator did not start; see its log")
            time.sleep(0.01)
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: calls in flight get a second to finish, the store is closed."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the portal simulator did not stop")
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
