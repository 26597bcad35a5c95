"""Connector accounts for the security tests, made as `bus provision connector` makes them.

Broker users are global, not per virtual host: each test's users get a random name, and
are deleted when the test ends, however it ends. Their permissions are on the test's own
virtual host (the `vhost` fixture), which holds the whole topology.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from bus.broker import Connection
from bus.declarations import apply_topology
from bus.management import Management, vhost_of
from bus.message import Message
from bus.ops.stream import read_stream
from bus.provision import connector_name, provision_connector
from bus.publisher import EventPublisher, Publisher
from bus.settings import Settings
from bus.signing import Signer
from bus.topology import HEARTBEAT_STREAM, topology
from schemas import Event


@dataclass(frozen=True)
class Account:
    """A provisioned connector: its name (also its broker user), unit, URL and key."""

    connector: str
    unit: str
    amqp_url: str  # the test's virtual host, as this user with its password
    signer: Signer
    key_file: Path
    registry: Path


def unique(system: str = "igate") -> str:
    """A system name no other test (or earlier run) has a broker user for."""
    return f"{system}{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def accounts(
    vhost: str, management_url: str, folder: Path, wanted: list[tuple[str, str]]
) -> Iterator[list[Account]]:
    """Provision a connector for each (unit, system) in `wanted`, registered in
    `folder/registry.json`, secrets in `folder/secrets`; their users deleted after."""
    registry = folder / "registry.json"
    names = [connector_name(system, unit) for unit, system in wanted]
    made: list[Account] = []
    with Management(management_url) as api:
        try:
            for (unit, system), name in zip(wanted, names, strict=True):
                account = provision_connector(
                    api, registry, folder / "secrets", unit=unit, name=system, vhost=vhost_of(vhost)
                )
                password = account.password_file.read_text().strip()
                key_text = account.signing.file.read_text().strip()
                made.append(
                    Account(
                        connector=name,
                        unit=account.unit,
                        amqp_url=as_user(vhost, name, password),
                        signer=Signer.from_text(account.signing.key.key_id, key_text),
                        key_file=account.signing.file,
                        registry=registry,
                    )
                )
            yield made
        finally:
            for name in names:
                api.delete_user(name)


def as_user(amqp_url: str, user: str, password: str) -> str:
    """`amqp_url` with another user's credentials."""
    parts = urlsplit(amqp_url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return parts._replace(netloc=f"{userinfo}@{host}").geturl()


async def with_topology(vhost: str) -> None:
    """Declare the bus's exchanges and queues in `vhost`, as the bus's own user."""
    connection = Connection(vhost, name="test-topology")
    await connection.start(timeout=10)
    try:
        _, mismatches = await apply_topology(connection, topology(Settings(amqp_url=vhost)))
        assert not mismatches, mismatches
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def connected(amqp_url: str, name: str = "test-connector") -> AsyncIterator[Connection]:
    connection = Connection(amqp_url, name=name, max_delay=0.5)
    await connection.start(timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def publishing_as(account: Account, signer: Signer | None = None) -> AsyncIterator[Sender]:
    """Publish as the connector does: on its own connection, signed (with its key unless
    told otherwise), stamped with its broker user."""
    async with connected(account.amqp_url) as connection:
        publisher = Publisher(connection)
        yield Sender(publisher, EventPublisher(publisher, signer or account.signer))


@dataclass
class Sender:
    publisher: Publisher
    events: EventPublisher

    async def publish(self, events: list[Event]) -> None:
        confirms = [await self.events.send(event) for event in events]
        await asyncio.gather(*confirms)


async def heartbeats(amqp_url: str) -> list[Message]:
    """Every heartbeat in the connector.heartbeats stream, read as the bus's own user."""
    found: list[Message] = []

    async def keep(message: Message, _end: int) -> None:
        found.append(message)

    async with connected(amqp_url, "test-heartbeats") as connection:
        await read_stream(connection, HEARTBEAT_STREAM, "first", keep)
    return found


async def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)
