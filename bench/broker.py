"""What the broker benchmarks share: a throwaway virtual host, the events, and a raw client.

The raw client is pika used the way a careful hand-written program would: pipelined
confirms in a window, or consume with a prefetch and ack each message. It is the ceiling
the bus is measured against, in the same run, on the same broker.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pika
from pika.adapters.asyncio_connection import AsyncioConnection

from bench.contract import an_event
from bus import management
from bus.broker import properties
from bus.message import Outgoing
from schemas import Event, encode_event

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def amqp_url() -> str:
    return os.environ.get("BUS_AMQP_URL", DEFAULT_URL)


@contextmanager
def scratch_vhost(url: str) -> Iterator[str]:
    """A virtual host for one benchmark run, deleted after."""
    with management.scratch_vhost(url, os.environ.get("BUS_MANAGEMENT_URL"), "bench") as vhost:
        yield vhost


def events(count: int) -> list[Event]:
    """`count` distinct ~1 KB status events, one dossier each."""
    template = an_event()
    start = datetime(2024, 1, 15, tzinfo=UTC)
    return [
        template.model_copy(
            update={"event_id": uuid.uuid4(), "seq": i, "occurred_at": start + timedelta(seconds=i)}
        )
        for i in range(count)
    ]


def bodies(count: int) -> list[bytes]:
    return [encode_event(event) for event in events(count)]


async def _open(url: str) -> tuple[AsyncioConnection, pika.channel.Channel]:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[AsyncioConnection] = loop.create_future()
    connection = AsyncioConnection(
        pika.URLParameters(url),
        on_open_callback=opened.set_result,
        on_open_error_callback=lambda _c, error: opened.set_exception(Exception(str(error))),
        custom_ioloop=loop,
    )
    await opened
    channel_open: asyncio.Future[pika.channel.Channel] = loop.create_future()
    connection.channel(on_open_callback=channel_open.set_result)
    return connection, await channel_open


def prebuilt(messages: list[Outgoing]) -> list[tuple[bytes, pika.BasicProperties]]:
    """The bus's messages as pika would send them: the raw client publishes exactly the
    bytes, properties and headers the bus produces, and does nothing else."""
    return [(message.body, properties(message)) for message in messages]


async def raw_publish(
    url: str,
    exchange: str,
    routing_key: str,
    messages: list[tuple[bytes, pika.BasicProperties]],
    window: int = 1000,
) -> float:
    """Seconds to publish every message, persistent, with up to `window` unconfirmed."""
    connection, channel = await _open(url)
    loop = asyncio.get_running_loop()
    confirmed = 0
    wake = asyncio.Event()

    def on_confirm(frame: pika.frame.Method) -> None:
        nonlocal confirmed
        tag = frame.method.delivery_tag
        confirmed = tag if frame.method.multiple else confirmed + 1
        wake.set()

    ready: asyncio.Future[object] = loop.create_future()
    channel.confirm_delivery(on_confirm, callback=ready.set_result)
    await ready
    started = loop.time()
    sent = 0
    while confirmed < len(messages):
        while sent < len(messages) and sent - confirmed < window:
            body, properties = messages[sent]
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
            sent += 1
        wake.clear()
        await wake.wait()
    elapsed = loop.time() - started
    connection.close()
    return elapsed


async def raw_consume(url: str, queue: str, count: int, prefetch: int) -> float:
    """Seconds to receive and ack `count` messages, one ack each."""
    connection, channel = await _open(url)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    received = 0

    def on_message(ch: pika.channel.Channel, method: object, _p: object, _b: bytes) -> None:
        nonlocal received
        ch.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]
        received += 1
        if received == count and not done.done():
            done.set_result(None)

    qos: asyncio.Future[object] = loop.create_future()
    channel.basic_qos(prefetch_count=prefetch, callback=qos.set_result)
    await qos
    started = loop.time()
    channel.basic_consume(queue, on_message)
    await done
    elapsed = loop.time() - started
    connection.close()
    return elapsed
