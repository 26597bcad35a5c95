"""The topology: pure names and arguments, and what `apply_topology` makes the broker hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bus.declarations import Declared, apply_topology
from bus.errors import TopologyMismatch
from bus.settings import Settings
from bus.topology import (
    AUDIT_STREAM,
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
    HEARTBEAT_STREAM,
    SYNC_QUEUE,
    Topology,
    audit_stream,
    heartbeat_stream,
    retry_queue_name,
    retry_queues,
    retry_tier_for,
    routing_key,
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
