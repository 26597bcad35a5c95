"""An ASGI app served by uvicorn inside this process, two ways.

`BackgroundServer`: in a thread of its own, for code that has no event loop running, or
whose app must not share it: the portal simulator in tests, the sample local systems.

    with BackgroundServer(app) as url:
        httpx.get(f"{url}/healthz")

`LoopServer`: as a task of the running event loop, for an app that touches that loop's
objects (a service's connection and store: the probes; the console in `make demo`).

    async with LoopServer(app) as url:
        ...

Port 0 (the default) takes a free port; `url` says which. The socket is bound before the
server starts, so a taken port fails the start at once (an `OSError`), and the port is known
and already taken when `start` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Literal

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


class _QuietServer(uvicorn.Server):
    # The service owns SIGINT and SIGTERM: uvicorn must not take them over while it serves.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LoopServer:
    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "asgi-server",
        lifespan: Literal["auto", "on", "off"] = "auto",
    ) -> None:
        self.app = app
        self.name = name
        self._host, self._port, self._lifespan = host, port, lifespan
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> str:
        """Serve, and return the base URL once the server listens."""
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        host, port = sock.getsockname()[:2]
        # log_config=None leaves the service's logging alone.
        config = uvicorn.Config(
            self.app,
            lifespan=self._lifespan,
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=1,
        )
        self._server = server = _QuietServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        while not server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # its error, if it has one
                raise RuntimeError(f"{self.name} stopped as it started")
            await asyncio.sleep(0.01)
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = self._task = None

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
