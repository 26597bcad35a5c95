"""Moving the sync service's messages when its queue layout changes: from the single queue
portal.sync to S shards, from S shards to another count, or back to one queue.

`bus topology apply` looks at what the broker holds (`survey`) before it declares the wanted
topology, and then, with both layouts declared side by side, moves what the old one holds
(`migrate`), in an order that loses nothing:

1. the new queues are bound first (by `apply_topology`), so an event published meanwhile
   reaches the old layout, the new one, or both: a duplicate, which dedup and the version
   guard drop, never a loss;
2. the old queues are unbound from what feeds them;
3. what the old retry tiers hold goes to the new tier of the same number (their
   dead-letter targets differ, and RabbitMQ cannot change a queue's arguments, so each
   layout has tiers of its own), then what the old work queues hold goes to the new ones:
   consumed, published with confirms, acked only once confirmed. A copy keeps body,
   properties and headers; its `user_id` becomes the bus's (the broker checks it against
   the publishing user), and the first publisher goes in the x-bus-published-by header,
   as in every copy the bus makes (`Message.forwarded`), which the signature check reads;
4. an old queue is deleted only once empty, and the shards exchange once no layout uses it.

A change of the shard count re-hashes: some dossiers belong to another shard now, so every
shard's messages go through the shards exchange again, each to its dossier's shard. A
dossier's older events may then come after newer ones on its new shard: the version guard
drops them as stale, since each event carries the whole snapshot.

The sync service must be stopped while its queues change: a worker still handling a
dossier's older events in the old layout while another applies its newer ones in the new
could send them out of order (and a shard gives nothing to a second consumer). `busy` says
which of them still have consumers; `bus topology apply` then changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Final

import structlog

from bus.broker import Channel, ChannelClosed, Connection
from bus.message import Message, Outgoing
from bus.publisher import Publisher
from bus.settings import Settings
from bus.topology import (
    EVENTS_EXCHANGE,
    SHARDS_EXCHANGE,
    SYNC_QUEUE,
    event_bindings,
    retry_queue_name,
    shard_queue_name,
    sharded,
)

log = structlog.get_logger(__name__)

WINDOW: Final = 500  # messages taken and unconfirmed at once
IDLE: Final = 2.0  # seconds without a delivery after which a move looks at the queue again
STALLED: Final = 10.0  # seconds without a delivery from a queue that still holds messages
GONE: Final = 5.0  # seconds a consumer may still be counted after it was cancelled
ACKS_SETTLE: Final = 0.5  # seconds between the last ack of a move and its channel's close
PASSES: Final = 3  # moves of a queue no longer fed, until it stays empty
_NOT_MOVED = ("x-delivery-count",)  # the source queue's own count of redeliveries


@dataclass(frozen=True)
class Layout:
    """What the broker holds of the sync service's queues."""

    single: bool  # portal.sync exists
    shards: int  # portal.sync.shard.0 … .<shards-1> exist
    single_tiers: int  # portal.sync.retry.1 … exist
    sharded_tiers: int  # portal.sync.shards.retry.1 … exist
    consumers: dict[str, int] = field(default_factory=dict)  # of portal.sync and the shards

    def busy(self, settings: Settings) -> list[str]:
        """The work queues a change to the layout `settings` wants would empty or re-hash
        while a sync worker consumes them: it would handle a dossier's older events while
        another applies its newer ones. Nothing may change until they are free."""
        moving = [shard_queue_name(shard) for shard in range(self.shards)]
        if sharded(settings):
            if self.shards == settings.sync_shards:
                moving = []
            moving += [SYNC_QUEUE] if self.single else []
        return [queue for queue in moving if self.consumers.get(queue)]


@dataclass
class Step:
    """One thing the migration did, or could not do, said as `bus topology apply` prints it."""

    action: str  # "moved", "unbound", "deleted", "kept"
    name: str
    detail: str = ""
    count: int = 0

    def __str__(self) -> str:
        return f"{self.action:<8} {self.name}  {self.detail}".rstrip()


@dataclass
class Migration:
    steps: list[Step] = field(default_factory=list)

    @property
    def moved(self) -> int:
        return sum(step.count for step in self.steps if step.action == "moved")

    @property
    def kept(self) -> list[Step]:
        """What is left for a later run: a queue that could not be emptied."""
        return [step for step in self.steps if step.action == "kept"]

    def __str__(self) -> str:
        if not self.steps:
            return "nothing to migrate"
        return f"{self.moved} messages moved, {len(self.kept)} queues left as they were"


async def survey(connection: Connection) -> Layout:
    """The sync queues the broker holds now: each series is numbered from 0 (or 1) without
    gaps, since the topology declares it so, and is counted up to its first missing one."""
    prober = _Prober(connection)
    try:
        single = await prober.exists(SYNC_QUEUE)
        shards = await prober.count(shard_queue_name, 0)
        single_tiers = await prober.count(lambda tier: retry_queue_name(tier, 1), 1)
        sharded_tiers = await prober.count(lambda tier: retry_queue_name(tier, 2), 1)
    finally:
        await prober.close()
    return Layout(single, shards, single_tiers, sharded_tiers, prober.consumers)


async def migrate(connection: Connection, settings: Settings, before: Layout) -> Migration:
    """Move what the layout `before` holds into the one `settings` wants, which
    `apply_topology` has declared already."""
    migration = Migration()
    mover = _Mover(connection, settings, migration)
    try:
        if sharded(settings):
            await mover.into_shards(before)
        elif before.shards:
            await mover.into_single(before)
    finally:
        await mover.close()
    return migration


class _Prober:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._channel: Channel | None = None
        self.consumers: dict[str, int] = {}

    async def exists(self, queue: str) -> bool:
        if self._channel is None or not self._channel.is_open:
            self._channel = await self._connection.channel()
        try:
            _, self.consumers[queue] = await self._channel.declare_queue(queue, passive=True)
        except ChannelClosed as error:
            if error.code != 404:
                raise
            return False  # the channel is closed over it: the next probe opens another
        return True

    async def count(self, name: Callable[[int], str], first: int) -> int:
        number = first
        while await self.exists(name(number)):
            number += 1
        return number - first

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class _Mover:
    def __init__(self, connection: Connection, settings: Settings, migration: Migration) -> None:
        self._connection = connection
        self._settings = settings
        self._migration = migration
        self._publisher = Publisher(connection, window=WINDOW)

    def _did(self, action: str, name: str, detail: str = "", count: int = 0) -> None:
        self._migration.steps.append(Step(action, name, detail, count))

    async def into_shards(self, before: Layout) -> None:
        shards = self._settings.sync_shards
        if before.single:
            for _, pattern in event_bindings():
                await self._unbind(SYNC_QUEUE, EVENTS_EXCHANGE, pattern)
            self._did("unbound", SYNC_QUEUE, f"from {EVENTS_EXCHANGE}")
        # The old tiers first: they dead-letter into portal.sync, which must stay until
        # they are empty.
        await self._retire_tiers(before.single_tiers, 1)
        if before.single:
            await self._move(SYNC_QUEUE, (SHARDS_EXCHANGE, ""))
            await self._delete(SYNC_QUEUE)
        if before.shards and before.shards != shards:
            for shard in range(shards, before.shards):
                await self._unbind(shard_queue_name(shard), SHARDS_EXCHANGE, "1")
                self._did("unbound", shard_queue_name(shard), f"from {SHARDS_EXCHANGE}")
            for shard in range(before.shards):
                # A shard still bound gets some of its messages back: move only what it
                # held, or the move would chase its own tail.
                await self._move(
                    shard_queue_name(shard),
                    (SHARDS_EXCHANGE, ""),
                    bounded=shard < shards,
                    single_active=True,
                )
            for shard in range(shards, before.shards):
                await self._delete(shard_queue_name(shard))

    async def into_single(self, before: Layout) -> None:
        for _, pattern in event_bindings():
            await self._unbind_exchange(SHARDS_EXCHANGE, EVENTS_EXCHANGE, pattern)
        self._did("unbound", SHARDS_EXCHANGE, f"from {EVENTS_EXCHANGE}")
        await self._retire_tiers(before.sharded_tiers, before.shards)
        for shard in range(before.shards):
            await self._move(shard_queue_name(shard), ("", SYNC_QUEUE), single_active=True)
        emptied = True
        for shard in range(before.shards):
            emptied = await self._delete(shard_queue_name(shard)) and emptied
        if emptied:
            await self._on_channel(lambda channel: channel.delete_exchange(SHARDS_EXCHANGE))
            self._did("deleted", SHARDS_EXCHANGE)

    async def _retire_tiers(self, count: int, shards: int) -> None:
        """Move the retry tiers of the other layout into this one's, tier by tier (the last
        tier takes what a longer series held), and delete them."""
        tiers = len(self._settings.retry_delays)
        wanted = self._settings.sync_shards
        for tier in range(1, count + 1):
            target = retry_queue_name(min(tier, tiers), wanted)
            await self._move(retry_queue_name(tier, shards), ("", target))
            await self._delete(retry_queue_name(tier, shards))

    async def _move(
        self,
        queue: str,
        route: tuple[str, str],
        *,
        bounded: bool = False,
        single_active: bool = False,
    ) -> None:
        """Take what `queue` holds and publish it along `route`, acking each message only
        once its copy is confirmed. `bounded`: only as many as it held at the start (it is
        still bound, and may get some back); else until it stays empty. `single_active`: a
        queue that gives nothing to a second consumer."""
        moved = failed = 0
        for _ in range(PASSES):
            channel = await self._connection.channel()
            try:
                held, consumers = await channel.declare_queue(queue, passive=True)
                if held == 0:
                    break
                if single_active and consumers:
                    self._did(
                        "kept",
                        queue,
                        f"{held} messages not moved: a sync worker consumes it; stop the sync"
                        " workers and run `bus topology apply` again",
                    )
                    break
                taken, refused = await self._take(channel, queue, route, held, bounded=bounded)
                moved, failed = moved + taken, failed + refused
            finally:
                await channel.close()  # what was taken and not confirmed goes back
            if bounded or failed:
                break
            # Another pass for what came back: a quorum queue may apply the acks sent just
            # before a channel closed after the close, and return their messages (moved
            # already: the copies are duplicates, which dedup and the version guard drop).
        if moved:
            self._did("moved", queue, f"→ {route[0] or route[1]}: {moved} messages", moved)
        if failed:
            self._did("kept", queue, f"{failed} messages not confirmed by the broker")

    async def _take(
        self, channel: Channel, queue: str, route: tuple[str, str], held: int, *, bounded: bool
    ) -> tuple[int, int]:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        tag = await channel.consume(
            queue,
            inbox.put_nowait,
            prefetch=min(WINDOW, held) if bounded else WINDOW,
            arguments=None,
            internal=(SHARDS_EXCHANGE,),  # its copies keep the bus's headers
        )
        confirms: list[asyncio.Future[None]] = []
        expected, quiet = held, 0.0
        while len(confirms) < expected or not inbox.empty():
            try:
                message = await asyncio.wait_for(inbox.get(), IDLE)
            except TimeoutError:
                quiet += IDLE
                if quiet >= STALLED:
                    log.warning("migration stalled", queue=queue, moved=len(confirms))
                    break
                continue
            quiet = 0.0
            confirm = await self._publisher.send(_copy(message, route))
            confirm.add_done_callback(partial(_settle, channel, message.delivery_tag))
            confirms.append(confirm)
            if len(confirms) == expected and inbox.empty() and not bounded:
                # What arrived meanwhile (an old retry tier dead-lettering into it) too.
                left, _ = await channel.declare_queue(queue, passive=True)
                expected += left
            if bounded and len(confirms) == held:
                break
        outcomes = await asyncio.gather(*confirms, return_exceptions=True)
        await asyncio.sleep(0)  # the acks of the last confirms, sent by their callbacks
        with contextlib.suppress(Exception):
            await channel.cancel(tag)
        # A quorum queue settles acks apart from its other commands, and may apply them
        # after the close of the channel they came on, which returns their messages: give
        # the acks a moment before the channel goes.
        await asyncio.sleep(ACKS_SETTLE)
        failed = sum(isinstance(outcome, BaseException) for outcome in outcomes)
        return len(outcomes) - failed, failed

    async def _unbind(self, queue: str, exchange: str, pattern: str) -> None:
        await self._on_channel(lambda channel: channel.unbind(queue, exchange, pattern))

    async def _unbind_exchange(self, destination: str, source: str, pattern: str) -> None:
        await self._on_channel(
            lambda channel: channel.unbind_exchange(destination, source, pattern)
        )

    async def _delete(self, queue: str) -> bool:
        """Delete `queue` if it is empty and nothing consumes it (what a consumer holds
        unacked is not counted, and quorum queues refuse `if-empty`); whether it was."""
        channel = await self._connection.channel()
        try:
            held, consumers = await channel.declare_queue(queue, passive=True)
            # A quorum queue counts the consumer a move just cancelled a moment longer.
            deadline = asyncio.get_running_loop().time() + GONE
            while consumers and not held and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                held, consumers = await channel.declare_queue(queue, passive=True)
            if held or consumers:
                why = f"{held} messages" if held else f"{consumers} consumers"
                self._did("kept", queue, f"not deleted: {why}; run `bus topology apply` again")
                return False
            await channel.delete_queue(queue)
        finally:
            await channel.close()
        self._did("deleted", queue)
        return True

    async def _on_channel(self, action: Callable[[Channel], Awaitable[None]]) -> None:
        # A refusal closes the channel it came on: one channel per action.
        channel = await self._connection.channel()
        try:
            await action(channel)
        finally:
            await channel.close()

    async def close(self) -> None:
        await self._publisher.flush()


def _copy(message: Message, route: tuple[str, str]) -> Outgoing:
    copy = message.forwarded(*route)
    return replace(copy, headers={k: v for k, v in copy.headers.items() if k not in _NOT_MOVED})


def _settle(channel: Channel, delivery_tag: int, confirm: asyncio.Future[None]) -> None:
    if confirm.cancelled() or confirm.exception() is not None:
        return  # left unacked: back in its queue when the channel closes
    if channel.is_open:
        channel.ack(delivery_tag)
