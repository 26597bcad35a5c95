"""The broker's management HTTP API, where the check makes its scratch virtual host and
finds the connections to cut."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import httpx
import structlog

from connectors.conformance.errors import ScratchError

log = structlog.get_logger(__name__)

MANAGEMENT_PORT: Final = 15672


def management_url_for(amqp_url: str) -> str:
    """Where the check finds the broker's management API: the broker's host and credentials,
    port 15672 (as `bench` and the tests find it)."""
    parts = urlsplit(amqp_url)
    userinfo = parts.netloc.rpartition("@")[0] or "guest:guest"
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host  # an IPv6 address goes back in brackets
    return f"http://{userinfo}@{host}:{MANAGEMENT_PORT}"


class Management:
    """The broker's management HTTP API: the scratch vhost, and the connections to cut."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        self.base = f"{parts.scheme}://{host}:{parts.port or MANAGEMENT_PORT}"
        self.user = unquote(parts.username or "guest")
        auth = (self.user, unquote(parts.password or "guest"))
        self._http = httpx.AsyncClient(base_url=self.base, auth=auth, timeout=30)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: object = None) -> Any:
        try:
            answer = await self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ScratchError(
                f"the broker's management API at {self.base} does not answer ({error})"
            ) from None
        if answer.status_code >= 400:
            raise ScratchError(
                f"the broker's management API at {self.base} answered {answer.status_code} to"
                f" {method} {path}: the check needs the credentials of a broker user"
                " allowed to create a virtual host (tag administrator)"
            )
        return answer.json() if answer.content else None

    async def create_vhost(self, name: str) -> None:
        await self._call("PUT", f"/api/vhosts/{quote(name, safe='')}")
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        path = f"/api/permissions/{quote(name, safe='')}/{quote(self.user, safe='')}"
        await self._call("PUT", path, everything)

    async def delete_vhost(self, name: str) -> None:
        try:
            await self._call("DELETE", f"/api/vhosts/{quote(name, safe='')}")
        except ScratchError as error:  # cleaning up: say it, and go on cleaning
            log.error("scratch virtual host left behind", vhost=name, error=str(error))

    async def connections(self, vhost: str, wait: float = 5.0) -> list[str]:
        """The names of the connections to `vhost`. The API may list a connection a moment
        after it opened: ask again for up to `wait` seconds while it lists none."""
        deadline = time.monotonic() + wait
        while True:
            found = await self._call("GET", f"/api/vhosts/{quote(vhost, safe='')}/connections")
            if found or time.monotonic() > deadline:
                return [str(connection["name"]) for connection in found]
            await asyncio.sleep(0.2)

    async def close_connection(self, name: str) -> None:
        """Force-close a connection, as a broker restart or a network cut would."""
        with contextlib.suppress(ScratchError):  # already gone: just as good
            await self._call("DELETE", f"/api/connections/{quote(name, safe='')}")
