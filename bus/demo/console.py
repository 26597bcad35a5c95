"""The operator console of the demo: served from the demo's own process, over the demo's
virtual host, reading the flow from the demo's /metrics, with two operators made up for the
run (a national one, and one who answers for H29 only) whose passwords the summary prints."""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from bus.console.accounts import Account, Accounts, hash_password
from bus.console.app import Console
from bus.probes import ProbeServer
from bus.serving import LoopServer
from bus.settings import Settings

NATIONAL: Final = "operator"
PROVINCIAL: Final = ("h29", "H29")  # the account, and the one unit it answers for


@dataclass(frozen=True)
class Login:
    name: str
    password: str
    units: str  # for people: "every unit", "H29 only"


@dataclass(frozen=True)
class DemoConsole:
    url: str
    metrics_url: str
    ops_url: str
    logins: tuple[Login, ...]


@contextlib.asynccontextmanager
async def serve_console(settings: Settings, workdir: Path) -> AsyncIterator[DemoConsole]:
    """The demo's /metrics, then the console over it, on the console's usual port when it is
    free (else any); both stop when the block ends."""
    logins = (
        Login(NATIONAL, secrets.token_urlsafe(9), "every unit"),
        Login(PROVINCIAL[0], secrets.token_urlsafe(9), f"{PROVINCIAL[1]} only"),
    )
    accounts = Accounts(
        [
            Account(NATIONAL, hash_password(logins[0].password), None),
            Account(PROVINCIAL[0], hash_password(logins[1].password), frozenset({PROVINCIAL[1]})),
        ]
    )
    ops_url = f"sqlite:///{workdir / 'ops.sqlite3'}"
    async with ProbeServer({}) as metrics:
        console_settings = settings.model_copy(
            update={
                "ops_url": SecretStr(ops_url),
                "console_secret": SecretStr(secrets.token_urlsafe(32)),
                "console_metrics_urls": (f"{metrics}/metrics",),
            }
        )
        app = Console(console_settings, accounts).app()
        port = _free_or_any(settings.console_port)
        async with LoopServer(app, port=port, name="console", lifespan="on") as url:
            yield DemoConsole(f"{url}/", f"{metrics}/metrics", ops_url, logins)


def _free_or_any(port: int) -> int:
    """`port` when nothing listens on it, else 0 (any free port): a console already running
    on this machine must not stop the demo."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port
