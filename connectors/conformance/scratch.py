"""The scratch environment a check runs in: everything but the source (see the package's
docstring), made for the run and thrown away after it, whatever happens."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from bus.broker import Connection
from bus.declarations import apply_topology
from bus.portal_sim import InProcessServer, Options
from bus.publisher import Publisher
from bus.settings import Settings
from bus.signing import KeyRing, VerifyKey
from bus.sync.runner import run_sync
from bus.topology import topology
from connectors.config import ConnectorConfig, make_source
from connectors.conformance.errors import ScratchError
from connectors.conformance.management import Management, management_url_for
from connectors.conformance.portal import Portal
from connectors.relay import Relay
from connectors.runner import Connector


@dataclass
class Scratch:
    connector: Connector
    relay: Relay
    publisher: Publisher
    portal: Portal  # the simulator's /_sim/ endpoints
    management: Management
    vhost: str
    tasks: list[asyncio.Task[None]]  # the sync service and the relay, named for people


@contextlib.asynccontextmanager
async def scratch(
    config: ConnectorConfig, settings: Settings, management_url: str | None
) -> AsyncIterator[Scratch]:
    """Everything but the source, made for the run and thrown away after it, in reverse."""
    amqp_url = settings.amqp_url.get_secret_value()
    name = config.connector.name
    key_id = f"{name}-conformance"
    secret = secrets.token_bytes(32)
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bus-check-")))
        management = Management(management_url or management_url_for(amqp_url))
        stack.push_async_callback(management.close)
        vhost = f"conformance-{name}-{uuid.uuid4().hex[:8]}"
        await management.create_vhost(vhost)
        stack.push_async_callback(management.delete_vhost, vhost)
        url = urlsplit(amqp_url)._replace(path="/" + quote(vhost, safe="")).geturl()

        options = Options(db=folder / "portal.sqlite3")
        portal_url = stack.enter_context(InProcessServer(options))
        portal = Portal(portal_url, config.unit)
        stack.push_async_callback(portal.close)

        keys = KeyRing([VerifyKey(key_id, name, "hmac-sha256", secret)]).save(folder / "keys.json")
        # Retries short and plenty, and quick reconnects: a check is minutes, not hours.
        sync_settings = settings.model_copy(
            update={
                "amqp_url": SecretStr(url),
                "portal_url": portal_url,
                "portal_password": SecretStr(options.password),
                "state_url": SecretStr(f"sqlite:///{folder / 'sync.sqlite3'}"),
                "verify_keys_file": keys,
                "allow_unsigned": False,
                "retry_delays": (0.2, 0.5, 1.0),
                "max_attempts": 20,
                "reconnect_max_delay": 0.5,
                "sync_rate": 500.0,
                "sync_min_rate": 20.0,
                "breaker_cooldown": 1.0,
                "breaker_max_cooldown": 2.0,
            }
        )

        connection = Connection(url, name=f"conformance-{name}", max_delay=0.5)
        publisher = Publisher(connection, window=settings.publish_window)
        try:
            await connection.start(timeout=10)
        except Exception as error:
            raise ScratchError(str(error)) from None
        stack.push_async_callback(connection.close)
        try:
            _, mismatches = await apply_topology(connection, topology(sync_settings))
        except Exception as error:
            raise ScratchError(f"topology not applied: {error}") from None
        if mismatches:
            raise ScratchError(f"topology: {mismatches}")
        sync = asyncio.create_task(run_sync(sync_settings), name="the sync service")
        stack.push_async_callback(_stop, sync)

        table = config.connector.model_copy(
            update={"state_dir": folder / "state", "signing_key_id": key_id}
        )
        connector_settings = settings.model_copy(
            update={
                "amqp_url": SecretStr(url),
                "signing_key": SecretStr(base64.b64encode(secret).decode()),
                "signing_key_id": key_id,
                "signing_key_file": None,
                "reconnect_max_delay": 0.5,
            }
        )
        connector = Connector(
            config.model_copy(update={"connector": table}), connector_settings, make_source(config)
        )
        stack.callback(connector.outbox.close)
        relay = Relay(connector.outbox, publisher, connector.signer, name, config.unit)
        relaying = asyncio.create_task(relay.run(), name="the connector's relay")
        stack.push_async_callback(_stop, relaying)
        yield Scratch(connector, relay, publisher, portal, management, vhost, [sync, relaying])


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, 60)
