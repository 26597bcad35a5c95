"""The topology: pure names and arguments, and what `apply_topology` makes the broker hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bus import headers
from bus.declarations import Declared, apply_topology
from bus.errors import TopologyMismatch
from bus.settings import Settings
from bus.topology import (
    AUDIT_STREAM,
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
    HASH_HEADER,
    HEARTBEAT_STREAM,
    SHARDS_EXCHANGE,
    SYNC_QUEUE,
    Topology,
    audit_stream,
    heartbeat_stream,
    own_shards,
    retry_queue_name,
    retry_queues,
    retry_tier_for,
    routing_key,
    shard_queue_name,
    sync_queue,
    sync_queues,
    sync_route,
    topology,
)
from core.helpers import connected, declare_queue, management_get
from schemas import EVENT_TYPES


def applied(url: str, wanted: Topology) -> tuple[list[Declared], list[TopologyMismatch]]:
    async def apply() -> tuple[list[Declared], list[TopologyMismatch]]:
        async with connected(url) as connection:
            return await apply_topology(connection, wanted)

    return asyncio.run(apply())


def broker_queue(management_url: str, vhost: str, name: str) -> Any:
    return management_get(management_url, f"queues/{{vhost}}/{name}", vhost)


def bindings_to(management_url: str, vhost: str, queue: str) -> set[tuple[str, str]]:
    return {
        (binding["source"], binding["routing_key"])
        for binding in management_get(management_url, "bindings/{vhost}", vhost)
        if binding["destination"] == queue and binding["source"]  # not the default exchange
    }


# Pure functions


def test_the_routing_key_is_the_unit_then_the_event_type() -> None:
    assert routing_key("H29", "status_changed") == "H29.status_changed"


def test_each_failed_attempt_before_the_last_goes_to_the_retry_tier_of_its_number() -> None:
    settings = Settings(retry_delays=(1.0, 10.0, 60.0, 600.0), max_attempts=5)

    tiers = [retry_tier_for(attempt, settings) for attempt in range(1, 5)]

    assert tiers == [retry_queue_name(tier) for tier in (1, 2, 3, 4)]


def test_the_last_allowed_attempt_has_no_retry_tier() -> None:
    settings = Settings(max_attempts=5)

    assert retry_tier_for(5, settings) is None
    assert retry_tier_for(6, settings) is None


def test_attempts_beyond_the_tiers_stay_in_the_longest_tier_until_max_attempts() -> None:
    settings = Settings(retry_delays=(1.0, 10.0), max_attempts=5)

    tiers = [retry_tier_for(attempt, settings) for attempt in range(1, 6)]

    assert tiers == [retry_queue_name(n) for n in (1, 2, 2, 2)] + [None]


def test_a_single_allowed_attempt_never_retries() -> None:
    assert retry_tier_for(1, Settings(max_attempts=1)) is None


def test_every_retry_queue_holds_for_its_delay_then_dead_letters_back_to_portal_sync() -> None:
    settings = Settings(retry_delays=(0.5, 10.0, 60.0))

    queues = retry_queues(settings)

    assert [queue.name for queue in queues] == [retry_queue_name(n) for n in (1, 2, 3)]
    for queue, delay in zip(queues, settings.retry_delays, strict=True):
        assert queue.kind == "quorum"
        assert queue.arguments["x-message-ttl"] == round(delay * 1000)
        assert queue.arguments["x-dead-letter-exchange"] == ""
        assert queue.arguments["x-dead-letter-routing-key"] == SYNC_QUEUE
        assert queue.arguments["x-dead-letter-strategy"] == "at-least-once"


def test_portal_sync_and_the_audit_stream_are_bound_to_every_event_type_of_any_unit() -> None:
    wanted = {(EVENTS_EXCHANGE, f"*.{event_type}") for event_type in EVENT_TYPES}

    queues = {queue.name: queue for queue in topology(Settings()).queues}

    assert set(queues[SYNC_QUEUE].bindings) == wanted
    assert set(queues[AUDIT_STREAM].bindings) == wanted


# Against the broker


def test_apply_topology_makes_the_broker_hold_every_queue_with_the_topology_arguments(
    vhost: str, management_url: str
) -> None:
    wanted = topology(Settings())

    declared, mismatches = applied(vhost, wanted)

    assert mismatches == []
    exchange = management_get(management_url, f"exchanges/{{vhost}}/{EVENTS_EXCHANGE}", vhost)
    assert (exchange["type"], exchange["durable"]) == ("topic", True)
    for queue in wanted.queues:
        held = broker_queue(management_url, vhost, queue.name)
        assert held["type"] == queue.kind, queue.name
        assert held["durable"] is True, queue.name
        assert held["arguments"] == queue.arguments, queue.name
        assert bindings_to(management_url, vhost, queue.name) == set(queue.bindings), queue.name
    assert {(d.kind, d.name) for d in declared if d.kind != "binding"} == {
        ("exchange", EVENTS_EXCHANGE),
        *(("queue", queue.name) for queue in wanted.queues),
    }


def test_the_declared_queues_are_the_ones_the_design_draws(vhost: str, management_url: str) -> None:
    settings = Settings()

    applied(vhost, topology(settings))

    sync = broker_queue(management_url, vhost, SYNC_QUEUE)
    assert sync["type"] == "quorum"
    assert sync["arguments"]["x-delivery-limit"] == settings.delivery_limit
    assert sync["arguments"]["x-dead-letter-routing-key"] == DEAD_LETTER_QUEUE
    assert sync["arguments"]["x-dead-letter-strategy"] == "at-least-once"
    for tier in range(1, len(settings.retry_delays) + 1):
        retry = broker_queue(management_url, vhost, retry_queue_name(tier))
        assert retry["type"] == "quorum"
        assert retry["arguments"]["x-dead-letter-routing-key"] == SYNC_QUEUE
        assert retry["arguments"]["x-message-ttl"] > 0
    assert broker_queue(management_url, vhost, DEAD_LETTER_QUEUE)["type"] == "quorum"
    audit = broker_queue(management_url, vhost, AUDIT_STREAM)
    assert audit["type"] == "stream"
    assert audit["arguments"]["x-max-age"] == settings.audit_max_age
    assert audit["arguments"]["x-max-length-bytes"] == settings.audit_max_bytes


def test_applying_the_topology_twice_changes_nothing(vhost: str, management_url: str) -> None:
    wanted = topology(Settings())
    first, _ = applied(vhost, wanted)
    before = {
        queue.name: broker_queue(management_url, vhost, queue.name)["arguments"]
        for queue in wanted.queues
    }
    bindings_before = management_get(management_url, "bindings/{vhost}", vhost)

    second, mismatches = applied(vhost, wanted)

    assert mismatches == []
    assert second == first
    assert {
        queue.name: broker_queue(management_url, vhost, queue.name)["arguments"]
        for queue in wanted.queues
    } == before
    assert len(management_get(management_url, "bindings/{vhost}", vhost)) == len(bindings_before)


def test_a_portal_sync_with_another_delivery_limit_is_reported_and_the_rest_is_declared(
    vhost: str, management_url: str
) -> None:
    settings = Settings(delivery_limit=20)
    wanted = topology(settings)
    existing = {**wanted.queues[0].arguments, "x-delivery-limit": 5}
    assert wanted.queues[0].name == SYNC_QUEUE
    declare_queue(vhost, SYNC_QUEUE, existing)

    declared, mismatches = applied(vhost, wanted)

    assert len(mismatches) == 1
    [mismatch] = mismatches
    assert (mismatch.name, mismatch.argument) == (SYNC_QUEUE, "x-delivery-limit")
    assert SYNC_QUEUE in str(mismatch)
    assert "x-delivery-limit" in str(mismatch)
    assert broker_queue(management_url, vhost, SYNC_QUEUE)["arguments"]["x-delivery-limit"] == 5
    declared_queues = {d.name for d in declared if d.kind == "queue"}
    assert declared_queues == {queue.name for queue in wanted.queues} - {SYNC_QUEUE}
    for queue in wanted.queues[1:]:
        held = broker_queue(management_url, vhost, queue.name)
        assert held["arguments"] == queue.arguments, queue.name
    assert bindings_to(management_url, vhost, AUDIT_STREAM) == set(
        audit_stream(Settings()).bindings
    )


@pytest.mark.parametrize("argument", ["x-delivery-limit", "x-dead-letter-strategy"])
def test_the_mismatch_names_the_current_and_the_wanted_value(vhost: str, argument: str) -> None:
    wanted = topology(Settings(delivery_limit=20))
    existing = dict(wanted.queues[0].arguments)
    existing[argument] = {"x-delivery-limit": 7, "x-dead-letter-strategy": "at-most-once"}[argument]
    declare_queue(vhost, SYNC_QUEUE, existing)

    _, [mismatch] = applied(vhost, wanted)

    assert mismatch.argument == argument
    assert str(existing[argument]) in str(mismatch)
    assert str(wanted.queues[0].arguments[argument]) in str(mismatch)


def test_heartbeats_route_to_their_own_stream_and_nowhere_near_the_sync_queue() -> None:
    wanted = {queue.name: queue for queue in topology(Settings()).queues}
    assert wanted[HEARTBEAT_STREAM] == heartbeat_stream()
    assert heartbeat_stream().bindings == ((EVENTS_EXCHANGE, routing_key("*", "heartbeat")),)
    assert (EVENTS_EXCHANGE, "*.heartbeat") not in wanted[SYNC_QUEUE].bindings


# Sharded sync


def test_one_shard_is_the_single_queue_portal_sync_as_before() -> None:
    settings = Settings(sync_shards=1)

    wanted = topology(settings)

    assert [exchange.name for exchange in wanted.exchanges] == [EVENTS_EXCHANGE]
    assert wanted.queues[0] == sync_queue(settings)
    assert sync_queues(settings) == (SYNC_QUEUE,)
    assert sync_route(settings) == ("", SYNC_QUEUE)
    assert retry_tier_for(1, settings) == "portal.sync.retry.1"


def test_four_shards_are_quorum_queues_with_one_active_consumer_behind_a_hash_exchange() -> None:
    settings = Settings(sync_shards=4, delivery_limit=20)

    wanted = topology(settings)

    exchanges = {exchange.name: exchange for exchange in wanted.exchanges}
    shards = exchanges[SHARDS_EXCHANGE]
    assert (shards.type, shards.arguments) == ("x-consistent-hash", {"hash-header": HASH_HEADER})
    assert HASH_HEADER == headers.DOSSIER_CODE
    assert set(shards.bindings) == {(EVENTS_EXCHANGE, f"*.{name}") for name in EVENT_TYPES}
    queues = {queue.name: queue for queue in wanted.queues}
    assert SYNC_QUEUE not in queues
    for shard in range(4):
        queue = queues[f"portal.sync.shard.{shard}"]
        assert queue.arguments == {
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-delivery-limit": 20,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        assert queue.bindings == ((SHARDS_EXCHANGE, "1"),)
    assert "portal.sync.shard.4" not in queues
    assert sync_route(settings) == (SHARDS_EXCHANGE, "")


def test_with_shards_the_retry_tiers_are_their_own_and_send_messages_back_through_the_hash() -> (
    None
):
    settings = Settings(sync_shards=4, retry_delays=(0.5, 10.0))

    queues = retry_queues(settings)

    assert [queue.name for queue in queues] == [
        "portal.sync.shards.retry.1",
        "portal.sync.shards.retry.2",
    ]
    for queue in queues:
        assert queue.arguments["x-dead-letter-exchange"] == SHARDS_EXCHANGE
        assert "x-dead-letter-routing-key" not in queue.arguments
        assert queue.arguments["x-dead-letter-strategy"] == "at-least-once"
    assert retry_tier_for(1, settings) == "portal.sync.shards.retry.1"
    assert retry_queue_name(2, 4) != retry_queue_name(2)


@pytest.mark.parametrize(("workers", "index", "own"), [(3, 0, [0, 3]), (3, 1, [1]), (3, 2, [2])])
def test_a_worker_subscribes_to_its_own_shards_first_then_to_every_other(
    workers: int, index: int, own: list[int]
) -> None:
    settings = Settings(sync_shards=4, sync_workers=workers, sync_worker_index=index)

    queues = sync_queues(settings)

    assert own_shards(settings) == tuple(own)
    assert list(queues[: len(own)]) == [shard_queue_name(shard) for shard in own]
    assert sorted(queues) == [shard_queue_name(shard) for shard in range(4)]


def test_every_shard_is_the_own_shard_of_exactly_one_worker() -> None:
    owners = [
        shard
        for index in range(3)
        for shard in own_shards(Settings(sync_shards=8, sync_workers=3, sync_worker_index=index))
    ]

    assert sorted(owners) == list(range(8))


def test_apply_topology_with_four_shards_binds_the_hash_exchange_to_the_events_exchange(
    vhost: str, management_url: str
) -> None:
    wanted = topology(Settings(sync_shards=4))

    declared, mismatches = applied(vhost, wanted)

    assert mismatches == []
    exchange = management_get(management_url, f"exchanges/{{vhost}}/{SHARDS_EXCHANGE}", vhost)
    assert (exchange["type"], exchange["arguments"]) == (
        "x-consistent-hash",
        {"hash-header": "x-dossier-code"},
    )
    exchange_bindings = {
        (binding["source"], binding["routing_key"])
        for binding in management_get(management_url, "bindings/{vhost}", vhost)
        if binding["destination"] == SHARDS_EXCHANGE and binding["destination_type"] == "exchange"
    }
    assert exchange_bindings == {(EVENTS_EXCHANGE, f"*.{name}") for name in EVENT_TYPES}
    for queue in wanted.queues:
        held = broker_queue(management_url, vhost, queue.name)
        assert held["arguments"] == queue.arguments, queue.name
        assert bindings_to(management_url, vhost, queue.name) == set(queue.bindings), queue.name
    # The events exchange is bound last, once every shard is bound behind it.
    kinds = [(d.kind, d.name) for d in declared]
    last_shard = kinds.index(("binding", f"{SHARDS_EXCHANGE} → portal.sync.shard.3"))
    assert kinds.index(("binding", f"{EVENTS_EXCHANGE} → {SHARDS_EXCHANGE}")) > last_shard
    second, _ = applied(vhost, wanted)
    assert second == declared
