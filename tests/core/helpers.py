"""Small helpers for the core tests: a connection to a test's vhost, the management API seen
from that vhost, and reading a queue back with a plain blocking pika client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika

from broker import management
from bus.broker import Connection
from bus.publisher import Publisher


@asynccontextmanager
async def connected(url: str, *, name: str = "tests.core") -> AsyncIterator[Connection]:
    """A bus connection to `url`, open on entry and closed on exit."""
    connection = Connection(url, name=name, max_delay=0.5)
    await connection.start(timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def publishing(
    url: str, *, window: int = 1000, name: str = "tests.core.publisher"
) -> AsyncIterator[tuple[Connection, Publisher]]:
    """A publisher on its own connection (made before the connection opens, as services do)."""
    connection = Connection(url, name=name, max_delay=0.5)
    publisher = Publisher(connection, window=window)
    await connection.start(timeout=10)
    try:
        yield connection, publisher
    finally:
        await connection.close()


def vhost_of(url: str) -> str:
    return unquote(urlsplit(url).path.removeprefix("/")) or "/"


def management_get(management_url: str, path: str, vhost_url: str) -> Any:
    """GET /api/<path>/<vhost>/..., e.g. management_get(m, "queues/{vhost}/portal.sync", url)."""
    return management(
        management_url, "GET", "/api/" + path.format(vhost=quote(vhost_of(vhost_url), safe=""))
    )


@dataclass(frozen=True)
class Received:
    properties: pika.BasicProperties
    routing_key: str
    body: bytes


def get_one(url: str, queue: str) -> Received | None:
    """The next message of `queue` (acked), or None when it is empty."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        method, properties, body = connection.channel().basic_get(queue, auto_ack=True)
    finally:
        connection.close()
    return None if method is None else Received(properties, method.routing_key, body)


def drain(url: str, queue: str) -> list[Received]:
    """Every message ready in `queue`, consumed and acked."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    received: list[Received] = []
    try:
        channel = connection.channel()
        ready = channel.queue_declare(queue, passive=True).method.message_count
        channel.basic_qos(prefetch_count=2000)
        if ready:
            for method, properties, body in channel.consume(
                queue, auto_ack=True, inactivity_timeout=10
            ):
                assert method is not None, f"{queue} went quiet after {len(received)} of {ready}"
                received.append(Received(properties, method.routing_key, body))
                if len(received) == ready:
                    break
            channel.cancel()
    finally:
        connection.close()
    return received


def declare_queue(url: str, queue: str, arguments: dict[str, Any] | None = None) -> None:
    """A durable queue declared with a plain pika client, outside the code under test."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(queue, durable=True, arguments=arguments)
    finally:
        connection.close()
