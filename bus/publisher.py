"""Confirmed publishing with many messages in flight.

Every message is persistent and mandatory. Up to `window` wait for their confirms at once
(waiting for each in turn is 15x slower); the broker acks them, often many at a time with
`multiple`. Each publish returns a future that resolves when the broker has the message and
fails with `Unroutable` or `Nacked` when it does not. When the connection drops, everything
unconfirmed is published again on the next one, in the same order: duplicates are possible
(consumers deduplicate by event id), losses are not.

Every message carries the broker user it is published as in `user_id`, which the broker
checks: the sync service knows for sure who published an event, whatever the body claims.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from bus import headers
from bus.broker import Channel, ChannelClosed, Connection
from bus.errors import Nacked, PublishError, Unroutable
from bus.message import Outgoing
from bus.signing import Signer
from bus.topology import EVENTS_EXCHANGE, routing_key
from schemas import DossierCode, Event, decode_event, encode_event


@dataclass(slots=True)
class _Pending:
    message: Outgoing
    confirmed: asyncio.Future[None]
    returned: bool = field(default=False)


class Publisher:
    def __init__(self, connection: Connection, *, window: int = 1000) -> None:
        self._connection = connection
        self._window = window
        self._channel: Channel | None = None
        self._by_tag: dict[int, _Pending] = {}  # in publish order, as tags grow
        self._next_tag = 1
        self._room = asyncio.Event()
        self._room.set()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._loop = asyncio.get_running_loop()
        self._watcher: asyncio.Task[None] | None = None
        connection.on_open(self._on_channel)

    @property
    def in_flight(self) -> int:
        return len(self._by_tag)

    @property
    def user(self) -> str:
        """The broker user this publisher publishes as: the `user_id` of its messages."""
        return self._connection.username

    async def send(self, message: Outgoing) -> asyncio.Future[None]:
        """Publish without waiting for the confirm; await the returned future for it."""
        if message.user_id is None:
            message = replace(message, user_id=self.user)
        while len(self._by_tag) >= self._window or not self._ready.is_set():
            await (self._room.wait() if self._ready.is_set() else self._ready.wait())
        pending = _Pending(message, self._loop.create_future())
        self._put(pending)
        return pending.confirmed

    async def publish(self, message: Outgoing) -> None:
        """Publish and wait until the broker confirms it."""
        await (await self.send(message))

    async def flush(self) -> None:
        """Wait until every message sent so far is confirmed or refused."""
        await self._drained.wait()

    def _put(self, pending: _Pending) -> None:
        assert self._channel is not None
        self._by_tag[self._next_tag] = pending
        self._next_tag += 1
        self._drained.clear()
        if len(self._by_tag) >= self._window:
            self._room.clear()
        # A channel that died under us and is not yet noticed: _watch re-publishes or fails
        # this message with the rest.
        with contextlib.suppress(ChannelClosed):
            self._channel.publish(pending.message)

    async def _on_channel(self, channel: Channel) -> None:
        self._ready.clear()
        await channel.enable_confirms(self._on_confirm, self._on_return)
        # Only now: if enabling confirms fails, the unconfirmed wait for the next channel.
        unconfirmed = list(self._by_tag.values())
        self._by_tag.clear()
        self._next_tag = 1
        self._channel = channel
        for pending in unconfirmed:
            if not pending.confirmed.done():
                pending.returned = False
                self._put(pending)
        if not self._by_tag:
            self._drained.set()
        self._ready.set()
        self._watcher = asyncio.create_task(self._watch(channel))

    async def _watch(self, channel: Channel) -> None:
        """A channel can die alone (publishing to an exchange that does not exist): fail what
        it held, since we cannot tell which message killed it, and open another."""
        reason = await channel.closed
        if channel is not self._channel:
            return
        self._ready.clear()  # nothing more goes out on a dead channel
        if not self._connection.is_open:
            return  # a lost connection: the reconnect re-publishes instead
        failed, self._by_tag = self._by_tag, {}
        for pending in failed.values():
            if not pending.confirmed.done():
                pending.confirmed.set_exception(PublishError(f"channel closed: {reason}"))
        self._room.set()
        self._drained.set()
        await self._on_channel(await self._connection.channel())

    def _on_confirm(self, tag: int, multiple: bool, acked: bool) -> None:
        if multiple:
            done = []
            for pending_tag in self._by_tag:  # dict order is tag order
                if pending_tag > tag:
                    break
                done.append(pending_tag)
        else:
            done = [tag] if tag in self._by_tag else []
        for done_tag in done:
            pending = self._by_tag.pop(done_tag)
            if pending.confirmed.done():
                continue
            if not acked:
                pending.confirmed.set_exception(Nacked(f"the broker refused {done_tag}"))
            elif pending.returned:
                message = pending.message
                pending.confirmed.set_exception(Unroutable(message.exchange, message.routing_key))
            else:
                pending.confirmed.set_result(None)
        if len(self._by_tag) < self._window:
            self._room.set()
        if not self._by_tag:
            self._drained.set()

    def _on_return(self, returned: Outgoing) -> None:
        # A return always precedes the ack of the same message: mark the oldest match.
        for pending in self._by_tag.values():
            if (
                not pending.returned
                and pending.message.message_id == returned.message_id
                and pending.message.routing_key == returned.routing_key
            ):
                pending.returned = True
                return


def event_message(
    event: Event, signer: Signer | None, body: bytes | None = None, *, user_id: str | None = None
) -> Outgoing:
    """The message that carries `event`: its identity in AMQP properties, routed by unit,
    signed when there is a signer. `body` when the event's JSON is already at hand;
    `user_id`, the broker user publishing it (else the publisher's own, which it is anyway)."""
    return stored_event_message(
        encode_event(event) if body is None else body,
        event_id=str(event.event_id),
        event_type=event.event_type,
        connector=event.source.connector,
        dossier_code=str(event.dossier_code),
        seq=event.seq,
        timestamp=int(event.occurred_at.timestamp()),
        signer=signer,
        user_id=user_id,
    )


def stored_event_message(
    body: bytes,
    *,
    event_id: str,
    event_type: str,
    connector: str,
    dossier_code: str,
    seq: int,
    timestamp: int,
    signer: Signer | None,
    user_id: str | None = None,
) -> Outgoing:
    """`event_message` for an event kept as JSON with its identity beside it (an outbox
    row): validated when it was stored, so not decoded again on its way out."""
    values: dict[str, Any] = {headers.DOSSIER_CODE: dossier_code, headers.SEQ: seq}
    if signer is not None:
        values.update(signer.sign(body, event_id, event_type, connector, timestamp))
    return Outgoing(
        exchange=EVENTS_EXCHANGE,
        routing_key=routing_key(DossierCode.parse(dossier_code).unit, event_type),
        body=body,
        headers=values,
        message_id=event_id,
        type=event_type,
        app_id=connector,
        user_id=user_id,
        timestamp=timestamp,
    )


class EventPublisher:
    """Publishes contract events through a `Publisher`, signed with one key."""

    def __init__(self, publisher: Publisher, signer: Signer | None = None) -> None:
        self._publisher = publisher
        self._signer = signer

    async def send(self, event: Event) -> asyncio.Future[None]:
        """Publish without waiting; the future resolves when the broker confirms."""
        message = event_message(event, self._signer, user_id=self._publisher.user)
        return await self._publisher.send(message)

    async def send_body(self, body: bytes) -> asyncio.Future[None]:
        """Publish an event that is already JSON (an outbox row): validated against the
        contract, then sent byte for byte, so the signature covers what was stored."""
        message = event_message(
            decode_event(body), self._signer, body, user_id=self._publisher.user
        )
        return await self._publisher.send(message)

    async def publish(self, event: Event) -> None:
        await (await self.send(event))
