"""A connector's broker user, as `bus provision connector` makes it, may do one thing: publish
to dossier.events under its own unit's routing keys (its events and its heartbeats), as
itself. The broker refuses everything else, on the real broker: another unit's routing key,
the default exchange, another user's `user_id`, consuming, declaring, deleting, binding,
purging."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from accounts_support import (
    Account,
    accounts,
    connected,
    heartbeats,
    publishing_as,
    unique,
    with_topology,
)

from bus import headers
from bus.broker import Channel, ChannelClosed
from bus.errors import PublishError
from bus.management import Management, vhost_of
from bus.message import Outgoing
from bus.publisher import event_message
from bus.settings import Settings
from bus.topology import (
    EVENTS_EXCHANGE,
    SYNC_QUEUE,
    topology,
)
from connectors.heartbeat import Health, heartbeat
from connectors.sample import lifecycles
from sync.sync_support import AGENCY, START, depth_now

ACCESS_REFUSED = 403
PRECONDITION_FAILED = 406
QUEUES = [queue.name for queue in topology(Settings()).queues]


@pytest.fixture
def account(vhost: str, management_url: str, tmp_path: Path) -> Iterator[Account]:
    """A connector of unit H29, provisioned on the test's vhost, which holds the topology."""
    asyncio.run(with_topology(vhost))
    with accounts(vhost, management_url, tmp_path, [("H29", unique())]) as [made]:
        yield made


def an_event(account: Account) -> Outgoing:
    """A status change of one of the connector's dossiers, signed with its key."""
    [lifecycle] = lifecycles(AGENCY, 1, seed=7, start=START, connector=account.connector)
    change = next(event for event in lifecycle if event.event_type == "status_changed")
    return event_message(change, account.signer)


def a_heartbeat(account: Account) -> Outgoing:
    now = datetime.now(UTC)
    health = Health(account.connector, "000.00.01.H29", "H29", "rest_poll", 0, 0, 0, None, now)
    return heartbeat(health)


async def published(account: Account, message: Outgoing) -> None:
    async with publishing_as(account) as sender:
        await sender.publisher.publish(message)


def refused_publish(account: Account, message: Outgoing) -> str:
    """Why the broker closed the channel of this publish."""
    with pytest.raises(PublishError) as caught:
        asyncio.run(published(account, message))
    return str(caught.value)


async def refusal(account: Account, act: Callable[[Channel], Awaitable[object]]) -> ChannelClosed:
    async with connected(account.amqp_url) as connection:
        channel = await connection.channel()
        with pytest.raises(ChannelClosed) as caught:
            await act(channel)
        return caught.value


def test_a_connector_publishes_its_units_events_and_heartbeats_stamped_as_its_broker_user(
    account: Account, vhost: str, management_url: str
) -> None:
    event, beat = an_event(account), a_heartbeat(account)
    assert (event.routing_key, beat.routing_key) == ("H29.status_changed", "H29.heartbeat")
    assert (event.user_id, beat.user_id) == (None, None)  # the publisher stamps them

    asyncio.run(published(account, event))
    asyncio.run(published(account, beat))

    with Management(management_url) as api:
        [queued] = api.peek(vhost_of(vhost), SYNC_QUEUE, 10)
    assert queued["properties"]["user_id"] == account.connector
    assert queued["properties"]["app_id"] == account.connector
    beats = asyncio.run(heartbeats(vhost))
    assert [(m.routing_key, m.user_id) for m in beats] == [("H29.heartbeat", account.connector)]


@pytest.mark.parametrize("key", ["H30.status_changed", "H30.heartbeat", "h29.status_changed"])
def test_a_connector_cannot_publish_under_another_units_routing_key(
    account: Account, vhost: str, key: str
) -> None:
    why = refused_publish(account, replace(an_event(account), routing_key=key))

    assert why.startswith(f"channel closed: {ACCESS_REFUSED} ACCESS_REFUSED"), why
    assert f"topic '{key}'" in why
    assert depth_now(vhost, SYNC_QUEUE) == 0


def test_a_connector_cannot_publish_straight_into_a_queue_where_bus_headers_are_believed(
    account: Account, vhost: str
) -> None:
    # Through the default exchange a message lands in portal.sync keeping its x-bus-*
    # headers: a claimed publisher, a resync flag. Only the bus may send that way.
    event = an_event(account)
    forged = replace(
        event,
        exchange="",
        routing_key=SYNC_QUEUE,
        headers={**event.headers, headers.PUBLISHED_BY: "another-h29", headers.RESYNC: "x"},
    )

    why = refused_publish(account, forged)

    assert why.startswith(f"channel closed: {ACCESS_REFUSED} ACCESS_REFUSED"), why
    assert "amq.default" in why
    assert depth_now(vhost, SYNC_QUEUE) == 0


@pytest.mark.parametrize("claimed", ["guest", "another-h29"])
def test_a_connector_cannot_publish_as_another_broker_user(
    account: Account, vhost: str, claimed: str
) -> None:
    why = refused_publish(account, replace(an_event(account), user_id=claimed))

    assert why.startswith(f"channel closed: {PRECONDITION_FAILED} PRECONDITION_FAILED"), why
    assert f"user_id property set to '{claimed}'" in why
    assert depth_now(vhost, SYNC_QUEUE) == 0


@pytest.mark.parametrize("queue", QUEUES)
def test_a_connector_cannot_consume_any_queue(account: Account, queue: str) -> None:
    # A stream needs an offset to be consumed at all: give one, so that only the
    # permission stands in the way.
    arguments = {"x-stream-offset": "first"} if _kind(queue) == "stream" else None

    async def consume(channel: Channel) -> object:
        return await channel.consume(queue, lambda _: None, prefetch=10, arguments=arguments)

    refused = asyncio.run(refusal(account, consume))

    assert refused.code == ACCESS_REFUSED, refused
    assert f"queue '{queue}'" in refused.text


ACTS: dict[str, Callable[[Channel], Awaitable[object]]] = {
    "declare-exchange": lambda ch: ch.declare_exchange("igate.own", "topic"),
    "redeclare-events-exchange": lambda ch: ch.declare_exchange(EVENTS_EXCHANGE, "topic"),
    "declare-queue": lambda ch: ch.declare_queue("igate.own"),
    "delete-sync-queue": lambda ch: ch.delete_queue(SYNC_QUEUE),
    "delete-events-exchange": lambda ch: ch.delete_exchange(EVENTS_EXCHANGE),
    "bind-sync-queue-to-everything": lambda ch: ch.bind(SYNC_QUEUE, EVENTS_EXCHANGE, "#"),
    "purge-sync-queue": lambda ch: ch.purge(SYNC_QUEUE),
}


@pytest.mark.parametrize("act", ACTS.values(), ids=ACTS.keys())
def test_a_connector_cannot_declare_delete_bind_or_purge_anything(
    account: Account, vhost: str, act: Callable[[Channel], Awaitable[object]]
) -> None:
    asyncio.run(published(account, an_event(account)))

    refused = asyncio.run(refusal(account, act))

    assert refused.code == ACCESS_REFUSED, refused
    assert depth_now(vhost, SYNC_QUEUE) == 1  # the queue and its message are still there


def _kind(queue: str) -> str:
    return next(q.kind for q in topology(Settings()).queues if q.name == queue)
