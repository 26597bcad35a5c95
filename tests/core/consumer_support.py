"""Async helpers for the consumer tests: a topology in a throwaway virtual host, signed
publishing (valid events and deliberately broken bodies), consumers running in the
background, and a look at what ended up in the dead-letter queue.

Everything talks to the real broker. Publishing and consuming go through the bus's own
`Connection`, `Publisher` and `Consumer`; only the checks (dead-letter queue, queue depths)
use pika directly, so they see what the broker holds and not what the bus believes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pika

from bus.broker import Connection
from bus.consumer import Consumer
from bus.declarations import apply_topology
from bus.message import Message, Outgoing
from bus.middleware import Handler, Middleware, standard
from bus.publisher import EventPublisher, Publisher
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey
from bus.topology import DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, SYNC_QUEUE, topology
from schemas import Event

CONNECTOR = "igate-hcm"  # the connector of tests/factories.py's events
KEY_ID = "igate-hcm-test"
SECRET = b"a test secret that is long enough"
ROUTING_KEY = "H29.status_changed"  # where a factory status event is routed
OCCURRED = 1705318200  # 2024-01-15T11:30:00Z: the AMQP timestamp of a raw publish


def fast_settings(**changes: Any) -> Settings:
    """Settings with retry tiers short enough for tests: 0.2 s, then 0.4 s; 3 attempts."""
    values: dict[str, Any] = {"retry_delays": (0.2, 0.4), "max_attempts": 3}
    values.update(changes)
    return Settings(**values)


def a_signer() -> Signer:
    return Signer(KEY_ID, "hmac-sha256", SECRET)


def a_key_ring() -> KeyRing:
    return KeyRing([VerifyKey(KEY_ID, CONNECTOR, "hmac-sha256", SECRET)])


@dataclass
class DeadLetter:
    body: bytes
    headers: dict[str, Any]
    routing_key: str
    message_id: str | None
    type: str | None
    app_id: str | None
    timestamp: int | None


@dataclass
class Bus:
    """A connected publisher in a virtual host holding the whole topology."""

    url: str
    settings: Settings
    connection: Connection
    publisher: Publisher
    events: EventPublisher
    signer: Signer = field(default_factory=a_signer)
    keys: KeyRing = field(default_factory=a_key_ring)

    async def publish(self, *events: Event) -> None:
        """Publish signed events, pipelined, and wait for every confirm."""
        confirms = [await self.events.send(event) for event in events]
        await asyncio.gather(*confirms)

    async def publish_raw(
        self,
        body: bytes,
        *,
        sign: bool = True,
        signer: Signer | None = None,
        signed_body: bytes | None = None,
        event_id: str | None = None,
        event_type: str = "status_changed",
        routing_key: str = ROUTING_KEY,
        extra_headers: dict[str, Any] | None = None,
    ) -> str:
        """Publish any body to the events exchange with an event's identity in the AMQP
        properties, as a connector would: signed by `signer` (the bus's own by default) over
        `signed_body` (the body itself by default), or unsigned when `sign` is False. Returns
        the event id."""
        event_id = event_id or str(uuid.uuid4())
        values: dict[str, Any] = {}
        if sign:
            signer = signer or self.signer
            values.update(
                signer.sign(
                    body if signed_body is None else signed_body,
                    event_id,
                    event_type,
                    CONNECTOR,
                    OCCURRED,
                )
            )
        values.update(extra_headers or {})
        await self.publisher.publish(
            Outgoing(
                exchange=EVENTS_EXCHANGE,
                routing_key=routing_key,
                body=body,
                headers=values,
                message_id=event_id,
                type=event_type,
                app_id=CONNECTOR,
                timestamp=OCCURRED,
            )
        )
        return event_id

    def consumer(
        self,
        handler: Handler,
        *,
        name: str = "consumer",
        prefetch: int = 50,
        signed: bool = True,
        without: tuple[type[Middleware], ...] = (),
    ) -> Worker:
        """A consumer of portal.sync with the standard chain (less the middleware types in
        `without`), on a connection of its own."""
        connection = Connection(self.url, name=name, max_delay=self.settings.reconnect_max_delay)
        publisher = Publisher(connection)  # for retry and dead-letter copies
        consumer = Consumer(
            connection,
            SYNC_QUEUE,
            handler,
            middleware=[
                step
                for step in standard(
                    SYNC_QUEUE, publisher, self.settings, self.keys if signed else None
                )
                if not isinstance(step, without)
            ],
            prefetch=prefetch,
        )
        return Worker(connection, consumer)


@dataclass
class Worker:
    """A consumer running in a background task until `stop()`."""

    connection: Connection
    consumer: Consumer
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.connection.start(timeout=10)
        self.task = asyncio.create_task(self.consumer.run())

    async def stop(self) -> None:
        self.consumer.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)
        await self.connection.close()


@contextlib.asynccontextmanager
async def bus_in(url: str, settings: Settings | None = None) -> AsyncIterator[Bus]:
    """Apply the topology in the virtual host at `url` and yield a connected publisher."""
    settings = settings or fast_settings()
    connection = Connection(url, name="test-publisher", max_delay=settings.reconnect_max_delay)
    publisher = Publisher(connection)
    await connection.start(timeout=10)
    try:
        _, mismatches = await apply_topology(connection, topology(settings))
        assert not mismatches, mismatches
        yield Bus(url, settings, connection, publisher, EventPublisher(publisher, a_signer()))
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def consuming(
    bus: Bus, handler: Handler, *, count: int = 1, **options: Any
) -> AsyncIterator[list[Worker]]:
    """Run `count` consumers of portal.sync in the background for the block's duration;
    `options` go to `Bus.consumer`."""
    workers = [
        bus.consumer(handler, name=f"consumer-{number}", **options) for number in range(count)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await worker.start()
            stack.push_async_callback(worker.stop)
        yield workers


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = 15.0, what: str = ""
) -> float:
    """Wait until `condition()` holds; return how long that took. Fails after `timeout`."""
    started = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        await asyncio.sleep(0.02)


def _blocking(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def depth_now(url: str, queue: str) -> int:
    """Messages ready in `queue` (not counting unacknowledged ones)."""
    with contextlib.closing(_blocking(url)) as connection:
        frame = connection.channel().queue_declare(queue, passive=True)
        return int(frame.method.message_count)


async def depth(url: str, queue: str) -> int:
    return await asyncio.to_thread(depth_now, url, queue)


def take_all_now(url: str, queue: str = DEAD_LETTER_QUEUE) -> list[DeadLetter]:
    """Take (get and ack) every message ready in `queue`, oldest first."""
    taken: list[DeadLetter] = []
    with contextlib.closing(_blocking(url)) as connection:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append(
                DeadLetter(
                    body,
                    properties.headers or {},
                    method.routing_key,
                    properties.message_id,
                    properties.type,
                    properties.app_id,
                    properties.timestamp,
                )
            )


async def take_all(url: str, queue: str = DEAD_LETTER_QUEUE) -> list[DeadLetter]:
    return await asyncio.to_thread(take_all_now, url, queue)


async def dead_letters(url: str, expected: int, *, timeout: float = 15.0) -> list[DeadLetter]:
    """Wait until `expected` messages are in the dead-letter queue, then take them all."""
    await eventually(
        lambda: _at_least(url, expected),
        timeout=timeout,
        what=f"{expected} message(s) in {DEAD_LETTER_QUEUE}",
    )
    return await take_all(url)


async def _at_least(url: str, expected: int) -> bool:
    return await depth(url, DEAD_LETTER_QUEUE) >= expected


class Recorder:
    """A handler that remembers what it saw, optionally failing with `fail(message)`."""

    def __init__(
        self,
        fail: Callable[[Message], BaseException | None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self._fail = fail
        self._delay = delay
        self.seen: list[Message] = []
        self.times: list[float] = []

    async def __call__(self, message: Message) -> None:
        self.seen.append(message)
        self.times.append(time.monotonic())
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._fail is not None and (error := self._fail(message)) is not None:
            raise error

    def event_ids(self) -> list[str]:
        return [str(message.event.event_id) for message in self.seen if message.event]

    def attempts_of(self, event_id: str) -> list[Message]:
        return [m for m in self.seen if m.event and str(m.event.event_id) == event_id]
