"""The broker's management API (`bus.management`) as the check uses it: from its event
loop, with its own error, and a little patience for connections the API lists late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

import structlog

from bus import management
from bus.management import management_url_for
from connectors.conformance.errors import ScratchError

__all__ = ["Management", "management_url_for"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


class Management:
    """The scratch vhost, and the connections to cut."""

    def __init__(self, url: str) -> None:
        self._api = management.Management(url)

    async def _run(self, call: Callable[[], T]) -> T:
        # The calls are few and short: a thread each keeps the loop free without a second
        # HTTP client for the same API.
        try:
            return await asyncio.to_thread(call)
        except management.ManagementError as error:
            raise ScratchError(str(error)) from None

    async def close(self) -> None:
        self._api.close()

    async def create_vhost(self, name: str) -> None:
        await self._run(lambda: self._api.create_vhost(name))

    async def delete_vhost(self, name: str) -> None:
        try:
            await self._run(lambda: self._api.call("DELETE", f"/api/vhosts/{quote(name, safe='')}"))
        except ScratchError as error:  # cleaning up: say it, and go on cleaning
            log.error("scratch virtual host left behind", vhost=name, error=str(error))

    async def connections(self, vhost: str, wait: float = 5.0) -> list[str]:
        """The names of the connections to `vhost`. The API may list a connection a moment
        after it opened: ask again for up to `wait` seconds while it lists none."""
        deadline = time.monotonic() + wait
        while True:
            found = await self._run(lambda: self._api.connections(vhost))
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)

    async def close_connection(self, name: str) -> None:
        """Force-close a connection, as a broker restart or a network cut would."""
        await self._run(lambda: self._api.close_connection(name))
