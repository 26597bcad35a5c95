"""An ASGI app served by uvicorn in a background thread of this process: the portal
simulator in tests, the sample local systems in tests and `make demo`.

    with BackgroundServer(app) as url:
        httpx.get(f"{url}/healthz")

Port 0 (the default) takes a free port; `url` says which. The socket is bound before the
thread starts, so the port is known and already taken when `start` returns.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp


class BackgroundServer:
    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "asgi-server",
        **settings: Any,
    ) -> None:
        self.app = app
        self.name = name
        self._host, self._port = host, port
        # log_config=None leaves the host process's logging alone; a stalled call must not
        # hold a test's teardown more than a second.
        self._settings = {
            "access_log": False,
            "log_config": None,
            "timeout_graceful_shutdown": 1,
            **settings,
        }
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        """Serve, and return the base URL once the server answers."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        host, port = sock.getsockname()[:2]
        self._server = server = uvicorn.Server(uvicorn.Config(self.app, **self._settings))
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"{self.name} did not start; see its log")
            time.sleep(0.01)
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: calls in flight get a second to finish."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not stop")
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
