"""The consumer runtime: deliveries from one queue or several, through the middleware, to a
handler.

Messages are handled by a pool of `prefetch` workers per queue. Acks are manual and come
after the chain finishes, which is after the handler succeeded or after a retry or
dead-letter copy was confirmed. Prefetch bounds the work in flight. When the connection
drops, in-flight work from the old channel is not acked (its tags died with it): the broker
redelivers it, and dedup and the version guard make that harmless. `holds` tells a handler
whether a message it still works on is still this consumer's to finish.

Queues of a single active consumer (the sync shards) are given to their first consumer:
a consumer subscribes to its own queues at once and to its `standby` queues a moment later,
so that each worker of a group becomes the active consumer of its own, and stands by for
the others', taking one over when its active consumer's channel or connection dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any

import pika.exceptions
import structlog

from bus.broker import Channel, Connection
from bus.errors import BusError
from bus.message import Message
from bus.middleware.base import Handler, Middleware, chain
from bus.workers import WorkerPool

log = structlog.get_logger(__name__)

STANDBY_DELAY = 1.5  # seconds after its own queues that a consumer stands by for the others

Chain = Sequence[Middleware] | Callable[[str], Sequence[Middleware]]
Job = tuple[Handler, Message]


class Consumer:
    def __init__(
        self,
        connection: Connection,
        queue: str | Sequence[str],
        handler: Handler,
        *,
        middleware: Chain = (),
        prefetch: int = 200,
        arguments: dict[str, Any] | None = None,
        shutdown_timeout: float = 30.0,
        standby: Sequence[str] = (),
        standby_delay: float = STANDBY_DELAY,
        internal: Collection[str] = (),
    ) -> None:
        """`queue`: the queue, or queues, consumed as soon as a channel opens; `standby`:
        those consumed `standby_delay` seconds later. `middleware`: the chain, or a function
        giving each queue its own (metrics labelled by queue). `internal`: exchanges whose
        deliveries are the bus's own copies (see `Channel.consume`)."""
        self._connection = connection
        self._queues = (queue,) if isinstance(queue, str) else tuple(queue)
        self._standby = tuple(standby)
        self._queue = ", ".join(self._queues + self._standby)  # for log lines
        steps = {
            name: list(middleware(name) if callable(middleware) else middleware)
            for name in self._queues + self._standby
        }
        self._chains = {name: chain(found, handler) for name, found in steps.items()}
        # Each instance once, in order: a shared chain is started and stopped once.
        self._middleware = list({id(m): m for found in steps.values() for m in found}.values())
        self._prefetch = prefetch
        self._arguments = arguments
        self._shutdown_timeout = shutdown_timeout
        self._standby_delay = standby_delay
        self._internal = frozenset(internal)
        self._channel: Channel | None = None
        self._consumer_tags: list[str] = []
        self._standing_by: asyncio.Task[None] | None = None
        self._workers = WorkerPool(prefetch * len(self._chains), self._handle)
        self._unsettled: set[int] = set()  # delivery tags in flight on the current channel
        self._to_ack: list[int] = []
        self._ack_scheduled = False
        self._stopping = asyncio.Event()
        self._last_delivery = time.monotonic()
        self.handled = 0
        connection.on_open(self._on_channel)

    async def _on_channel(self, channel: Channel) -> None:
        if self._stopping.is_set():
            return
        self._unsettled.clear()  # tags of the old channel died with it
        self._to_ack.clear()
        self._channel = channel
        self._consumer_tags = []
        if self._standing_by is not None:
            self._standing_by.cancel()
        for queue in self._queues:
            await self._subscribe(channel, queue)
        if self._standby:
            self._standing_by = asyncio.create_task(self._stand_by(channel))

    async def _stand_by(self, channel: Channel) -> None:
        await asyncio.sleep(self._standby_delay)
        for queue in self._standby:
            if channel is not self._channel or self._stopping.is_set():
                return
            try:
                await self._subscribe(channel, queue, standby=True)
            except (BusError, pika.exceptions.AMQPError) as error:
                # The channel died meanwhile: the reconnect subscribes again.
                log.warning("could not stand by", queue=queue, error=str(error))
                return

    async def _subscribe(self, channel: Channel, queue: str, *, standby: bool = False) -> None:
        deliver = partial(self._deliver, self._chains[queue])
        tag = await channel.consume(
            queue,
            deliver,
            prefetch=self._prefetch,
            arguments=self._arguments,
            internal=self._internal,
        )
        self._consumer_tags.append(tag)
        log.info("consuming", queue=queue, prefetch=self._prefetch, standby=standby)

    def holds(self, message: Message) -> bool:
        """Whether `message` came on the channel this consumer holds now: if not, it is no
        longer this consumer's to finish (the broker gives it again, maybe to another)."""
        channel = self._channel
        return channel is not None and channel.is_open and channel.generation == message.generation

    def _deliver(self, handler: Handler, message: Message) -> None:
        self._last_delivery = time.monotonic()
        self._unsettled.add(message.delivery_tag)
        self._workers.submit((handler, message))

    async def _handle(self, job: Job) -> None:
        handler, message = job
        try:
            await handler(message)
        except Exception:
            # Not even a retry copy could be published (the broker is gone?): give it back.
            log.exception("message left unacked", queue=self._queue)
            self._settle(message, ack=False)
            return
        finally:
            self._last_delivery = time.monotonic()  # finishing a message is activity too
        self.handled += 1
        self._settle(message, ack=True)

    def _settle(self, message: Message, *, ack: bool) -> None:
        channel = self._channel
        if channel is None or channel.generation != message.generation or not channel.is_open:
            return  # delivered on a channel that is gone: the broker will redeliver it
        self._unsettled.discard(message.delivery_tag)
        if not ack:
            channel.nack(message.delivery_tag, requeue=True)
            return
        self._to_ack.append(message.delivery_tag)
        if not self._ack_scheduled:
            self._ack_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        """Ack what finished during this turn of the event loop, in as few frames as can be:
        one `multiple` ack covers every finished tag below the oldest still in flight."""
        self._ack_scheduled = False
        channel, tags = self._channel, sorted(self._to_ack)
        self._to_ack.clear()
        if channel is None or not channel.is_open or not tags:
            return
        oldest_in_flight = min(self._unsettled, default=tags[-1] + 1)
        below = [tag for tag in tags if tag < oldest_in_flight]
        if below:
            channel.ack(below[-1], multiple=True)
        for tag in tags[len(below) :]:
            channel.ack(tag)

    def stop(self) -> None:
        """Ask `run` to finish: no new deliveries, in-flight work completes or goes back."""
        self._stopping.set()

    def stop_on_signals(self) -> None:
        """SIGTERM (a deployment stopping us) and SIGINT finish cleanly instead of killing
        in-flight work."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)

    async def run(self, *, until_idle: float | None = None) -> None:
        """Consume until `stop()`, or until nothing arrived for `until_idle` seconds."""
        for middleware in self._middleware:
            await middleware.on_start()
        self._workers.start()
        try:
            if until_idle is None:
                await self._stopping.wait()
            else:
                await self._wait_idle(until_idle)
        finally:
            await self._shutdown()
            for middleware in reversed(self._middleware):
                await middleware.on_stop()

    async def _wait_idle(self, idle: float) -> None:
        await self._connection.wait_open()
        self._last_delivery = time.monotonic()
        while not self._stopping.is_set():
            quiet = time.monotonic() - self._last_delivery
            if not self._workers.pending and quiet >= idle:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), min(idle, 0.05))

    async def _shutdown(self) -> None:
        self._stopping.set()
        if self._standing_by is not None:
            self._standing_by.cancel()
        if self._channel is not None:
            for tag in self._consumer_tags:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._channel.cancel(tag), 5)
        unfinished = await self._workers.drain(self._shutdown_timeout)
        await self._workers.close()
        if unfinished:
            log.warning("returned unfinished messages", queue=self._queue, count=unfinished)
        # Closing the channel hands anything unacked back to the queue.
        if self._channel is not None:
            await self._channel.close()
