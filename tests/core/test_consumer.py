"""The consumer of portal.sync: retries by tier, dead letters with their reasons, poison
messages, the broker's delivery limit, dedup and prefetch. Each test runs against the real
broker in a virtual host of its own, with retry tiers of 0.2 s and 0.4 s and 3 attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pika
import pytest
from consumer_support import (
    KEY_ID,
    ROUTING_KEY,
    Bus,
    Recorder,
    a_signer,
    bus_in,
    consuming,
    dead_letters,
    depth,
    eventually,
    fast_settings,
    take_all,
)

from bus import headers
from bus.broker import Connection
from bus.consumer import Consumer
from bus.errors import PermanentError, TransientError
from bus.message import Message
from bus.middleware import Retries
from bus.publisher import event_message
from bus.signing import Signer
from bus.topology import DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, SYNC_QUEUE, retry_queue_name
from factories import a_status_changed, an_event_dict
from schemas import Event, encode_event


def always(error: BaseException) -> Callable[[Message], BaseException]:
    return lambda _message: error


def identity_of(event: Event) -> tuple[str, str, str, int]:
    """The AMQP properties that carry an event's identity: message_id, type, app_id and
    timestamp (seconds)."""
    return (
        str(event.event_id),
        event.event_type,
        event.source.connector,
        int(event.occurred_at.timestamp()),
    )


def first_death_queue(message: Message) -> str | None:
    deaths = message.headers.get("x-death") or []
    return str(deaths[0]["queue"]) if deaths else None


# --- retries, tier by tier -------------------------------------------------------------------


def test_a_transient_failure_is_retried_through_each_tier_then_dead_lettered_with_its_history(
    vhost: str,
) -> None:
    event = a_status_changed()
    body = encode_event(event)
    handler = Recorder(fail=always(TransientError("portal timed out")))

    async def scenario() -> list[Any]:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await bus.publish(event)
            dead = await dead_letters(vhost, 1)
            await asyncio.sleep(0.3)  # nothing else arrives: the message is finished with
            return dead + await take_all(vhost, SYNC_QUEUE)

    [dead] = asyncio.run(scenario())

    first, second, third = handler.seen
    assert [m.attempt for m in handler.seen] == [1, 2, 3]
    # The first delivery comes from the connector; each retry comes back through its tier.
    assert (first.exchange, first.routing_key) == (EVENTS_EXCHANGE, ROUTING_KEY)
    assert first_death_queue(second) == retry_queue_name(1)
    assert first_death_queue(third) == retry_queue_name(2)
    assert second.headers[headers.ORIGINAL_ROUTING_KEY] == ROUTING_KEY
    # Each tier held the message at least its TTL.
    assert handler.times[1] - handler.times[0] >= 0.2
    assert handler.times[2] - handler.times[1] >= 0.4
    # The dead letter tells the whole story, and the body is the connector's, byte for byte.
    assert dead.body == body
    assert dead.headers[headers.REASON] == "transient"
    assert dead.headers[headers.ERROR_CLASS] == "TransientError"
    assert dead.headers[headers.ERROR] == "portal timed out"
    assert dead.headers[headers.ATTEMPT] == 3
    assert dead.headers[headers.ORIGINAL_ROUTING_KEY] == ROUTING_KEY
    assert dead.headers[headers.ORIGINAL_EXCHANGE] == EVENTS_EXCHANGE
    # It keeps the event's identity, so it can still be verified and replayed.
    assert (dead.message_id, dead.type, dead.app_id, dead.timestamp) == identity_of(event)
    assert dead.headers[headers.KEY_ID] == KEY_ID
    assert dead.headers[headers.SIGNATURE]
    first_failure = datetime.fromisoformat(dead.headers[headers.FIRST_FAILURE])
    last_failure = datetime.fromisoformat(dead.headers[headers.LAST_FAILURE])
    assert first_failure < last_failure
    # The first failure is stamped once and carried unchanged through every attempt.
    assert second.headers[headers.FIRST_FAILURE] == dead.headers[headers.FIRST_FAILURE]
    assert third.headers[headers.FIRST_FAILURE] == dead.headers[headers.FIRST_FAILURE]


def test_attempts_beyond_the_last_tier_wait_in_the_last_tier_again(vhost: str) -> None:
    handler = Recorder(fail=always(TransientError("still down")))

    async def scenario() -> list[Any]:
        async with bus_in(vhost, fast_settings(max_attempts=4)) as bus, consuming(bus, handler):
            await bus.publish(a_status_changed())
            return await dead_letters(vhost, 1)

    [dead] = asyncio.run(scenario())

    assert [m.attempt for m in handler.seen] == [1, 2, 3, 4]
    assert [first_death_queue(m) for m in handler.seen] == [
        None,
        retry_queue_name(1),
        retry_queue_name(2),
        retry_queue_name(2),
    ]
    assert handler.times[3] - handler.times[2] >= 0.4
    assert dead.headers[headers.ATTEMPT] == 4


def test_an_unexpected_exception_from_a_handler_is_retried_like_a_transient_one(
    vhost: str,
) -> None:
    handler = Recorder(fail=always(KeyError("status")))

    async def scenario() -> list[Any]:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await bus.publish(a_status_changed())
            return await dead_letters(vhost, 1)

    [dead] = asyncio.run(scenario())

    assert [m.attempt for m in handler.seen] == [1, 2, 3]
    assert dead.headers[headers.REASON] == "error"
    assert dead.headers[headers.ERROR_CLASS] == "KeyError"


def test_a_permanent_failure_is_dead_lettered_at_once(vhost: str) -> None:
    event = a_status_changed()
    handler = Recorder(fail=always(PermanentError("the portal rejects this procedure code")))

    async def scenario() -> list[Any]:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await bus.publish(event)
            dead = await dead_letters(vhost, 1)
            await asyncio.sleep(0.8)  # longer than both tiers: no retry shows up
            return dead

    [dead] = asyncio.run(scenario())

    assert len(handler.seen) == 1
    assert dead.body == encode_event(event)
    assert dead.headers[headers.ATTEMPT] == 1
    assert dead.headers[headers.REASON] == "permanent"
    assert dead.headers[headers.ERROR_CLASS] == "PermanentError"
    assert dead.headers[headers.ERROR] == "the portal rejects this procedure code"
    assert dead.headers[headers.FIRST_FAILURE] == dead.headers[headers.LAST_FAILURE]


def test_a_message_that_succeeds_on_a_retry_is_handled_and_not_dead_lettered(vhost: str) -> None:
    handler = Recorder(
        fail=lambda m: TransientError("portal busy") if m.attempt == 1 else None,
    )

    async def scenario() -> tuple[int, int]:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await bus.publish(a_status_changed())
            await eventually(lambda: len(handler.seen) == 2, what="the retry")
            await asyncio.sleep(0.3)
            return await depth(vhost, DEAD_LETTER_QUEUE), await depth(vhost, SYNC_QUEUE)

    assert asyncio.run(scenario()) == (0, 0)
    assert [m.attempt for m in handler.seen] == [1, 2]


# --- poison and bad input --------------------------------------------------------------------


def test_a_poison_message_among_999_valid_ones_is_dead_lettered_and_the_rest_are_handled(
    vhost: str,
) -> None:
    events = [a_status_changed(seq=n) for n in range(1, 1000)]
    poison = b"<dossier>not JSON at all</dossier>"
    handler = Recorder()

    async def scenario() -> list[Any]:
        async with bus_in(vhost) as bus, consuming(bus, handler, prefetch=100):
            await bus.publish(*events[:500])
            await bus.publish_raw(poison)
            await bus.publish(*events[500:])
            dead = await dead_letters(vhost, 1)
            await eventually(lambda: len(handler.seen) >= 999, what="the 999 valid events")
            # The consumer carries on with what comes after.
            late = a_status_changed()
            await bus.publish(late)
            await eventually(lambda: str(late.event_id) in handler.event_ids(), what="late")
            return dead

    [dead] = asyncio.run(scenario())

    handled = handler.event_ids()
    assert set(handled[:-1]) == {str(event.event_id) for event in events}
    assert len(handled) == 1000  # each valid event once, poison never reached the handler
    assert dead.body == poison
    assert dead.headers[headers.REASON] == "not_json"
    assert dead.headers[headers.ATTEMPT] == 1


BODY_LIMIT = 8 * 1024


def valid_body() -> bytes:
    return encode_event(a_status_changed())


BadInput = Callable[[Bus], Awaitable[bytes]]


async def not_json(bus: Bus) -> bytes:
    body = b"{'dossier': 'not JSON: single quotes'}"
    await bus.publish_raw(body)
    return body


async def not_utf8(bus: Bus) -> bytes:
    body = valid_body().replace("Nguyễn".encode(), "Nguy\xe1n".encode("latin-1"))
    await bus.publish_raw(body)
    return body


async def too_large(bus: Bus) -> bytes:
    body = valid_body() + b" " * BODY_LIMIT  # still valid JSON, and validly signed
    await bus.publish_raw(body)
    return body


async def not_the_contract(bus: Bus) -> bytes:
    data = an_event_dict()
    del data["dossier_code"]
    body = json.dumps(data).encode()
    await bus.publish_raw(body)
    return body


async def unknown_type(bus: Bus) -> bytes:
    body = json.dumps(an_event_dict(event_type="dossier_deleted")).encode()
    await bus.publish_raw(body, event_type="dossier_deleted")
    return body


async def unsigned(bus: Bus) -> bytes:
    body = valid_body()
    await bus.publish_raw(body, sign=False)
    return body


async def tampered(bus: Bus) -> bytes:
    body = valid_body()
    changed = body.replace(b'"seq":1', b'"seq":9')
    assert changed != body
    await bus.publish_raw(changed, signed_body=body)
    return changed


async def signed_with_another_secret(bus: Bus) -> bytes:
    body = valid_body()
    await bus.publish_raw(body, signer=Signer(bus.signer.key_id, "hmac-sha256", b"forged"))
    return body


async def signed_with_an_unknown_key(bus: Bus) -> bytes:
    body = valid_body()
    await bus.publish_raw(body, signer=Signer("stolen-key", "hmac-sha256", b"whatever"))
    return body


BAD_INPUTS = [
    pytest.param(not_json, "not_json", "InvalidMessage", "not JSON", id="not-json"),
    pytest.param(not_utf8, "not_utf8", "InvalidMessage", "not UTF-8", id="not-utf8"),
    pytest.param(too_large, "too_large", "InvalidMessage", "byte limit", id="too-large"),
    pytest.param(not_the_contract, "contract", "InvalidMessage", "dossier_code", id="contract"),
    pytest.param(
        unknown_type, "unknown_type", "UnknownEventType", "dossier_deleted", id="unknown-type"
    ),
    pytest.param(unsigned, "signature", "SignatureError", "not signed", id="unsigned"),
    pytest.param(tampered, "signature", "SignatureError", "does not match", id="tampered"),
    pytest.param(
        signed_with_another_secret,
        "signature",
        "SignatureError",
        "does not match",
        id="wrong-secret",
    ),
    pytest.param(
        signed_with_an_unknown_key, "signature", "SignatureError", "unknown key", id="unknown-key"
    ),
]


@pytest.mark.parametrize(("send_bad", "reason", "error_class", "explained"), BAD_INPUTS)
def test_bad_input_is_dead_lettered_at_once_with_its_reason_and_the_valid_events_around_it_flow(
    vhost: str, send_bad: BadInput, reason: str, error_class: str, explained: str
) -> None:
    before, after = a_status_changed(seq=1), a_status_changed(seq=2)
    handler = Recorder()

    async def scenario() -> tuple[bytes, list[Any]]:
        settings = fast_settings(max_body_bytes=BODY_LIMIT)
        async with bus_in(vhost, settings) as bus, consuming(bus, handler):
            await bus.publish(before)
            body = await send_bad(bus)
            await bus.publish(after)
            dead = await dead_letters(vhost, 1)
            await eventually(lambda: len(handler.seen) >= 2, what="the valid events")
            await asyncio.sleep(0.5)  # longer than the first tier: no retry of the bad one
            return body, dead + await take_all(vhost)

    body, [dead] = asyncio.run(scenario())

    assert sorted(handler.event_ids()) == sorted([str(before.event_id), str(after.event_id)])
    assert dead.body == body
    assert dead.headers[headers.REASON] == reason
    assert dead.headers[headers.ERROR_CLASS] == error_class
    assert explained in dead.headers[headers.ERROR]
    assert dead.headers[headers.ATTEMPT] == 1
    assert dead.headers[headers.ORIGINAL_ROUTING_KEY] == ROUTING_KEY


# --- bounded attempts with several consumers -------------------------------------------------


def test_an_always_failing_message_gets_exactly_max_attempts_with_three_consumers_on_the_queue(
    vhost: str,
) -> None:
    failing = a_status_changed(seq=1)
    others = [a_status_changed(seq=n) for n in range(2, 32)]
    handler = Recorder(
        fail=lambda m: TransientError("no") if m.message_id == str(failing.event_id) else None,
        delay=0.01,
    )

    async def scenario() -> list[Any]:
        async with bus_in(vhost) as bus, consuming(bus, handler, count=3, prefetch=5) as workers:
            await bus.publish(failing, *others)
            dead = await dead_letters(vhost, 1)
            await eventually(lambda: len(handler.seen) >= 3 + len(others), what="all events")
            await asyncio.sleep(0.8)  # any stray attempt would show up by now
            assert all(worker.consumer.handled > 0 for worker in workers)  # all three took part
            return dead

    [dead] = asyncio.run(scenario())

    attempts = handler.attempts_of(str(failing.event_id))
    assert [m.attempt for m in attempts] == [1, 2, 3]
    assert dead.headers[headers.ATTEMPT] == 3
    # Every other event was handled once, by whichever consumer got it.
    assert Counter(handler.event_ids()) == {str(failing.event_id): 3} | {
        str(event.event_id): 1 for event in others
    }


# --- headers a connector cannot forge -------------------------------------------------------


async def publish_with_headers(bus: Bus, event: Any, **extra: Any) -> None:
    """A validly signed event carrying headers of the bus's own that its connector added."""
    outgoing = event_message(event, a_signer())
    await bus.publisher.publish(replace(outgoing, headers={**outgoing.headers, **extra}))


def test_a_connector_cannot_skip_the_retries_by_sending_its_own_attempt_header(
    vhost: str,
) -> None:
    event = a_status_changed()
    handler = Recorder(fail=lambda m: TransientError("busy") if len(handler.seen) == 1 else None)

    async def scenario() -> int:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await publish_with_headers(bus, event, **{headers.ATTEMPT: 3})
            await eventually(lambda: len(handler.seen) == 2, timeout=5, what="a retry")
            return await depth(vhost, DEAD_LETTER_QUEUE)

    assert asyncio.run(scenario()) == 0
    assert [m.attempt for m in handler.seen] == [1, 2]


def test_a_garbled_attempt_header_from_a_connector_counts_as_a_first_attempt(vhost: str) -> None:
    event = a_status_changed()
    handler = Recorder(fail=always(PermanentError("refused")))

    async def scenario() -> list[Any]:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await publish_with_headers(bus, event, **{headers.ATTEMPT: "first"})
            return await dead_letters(vhost, 1, timeout=5)

    [dead] = asyncio.run(scenario())
    assert len(handler.seen) == 1
    assert dead.headers[headers.ATTEMPT] == 1


def test_a_connector_cannot_claim_another_unit_through_the_original_routing_key_header(
    vhost: str,
) -> None:
    event = a_status_changed()  # a Hồ Chí Minh City (H29) event, routed as H29.status_changed
    handler = Recorder(fail=always(PermanentError("refused")))

    async def scenario() -> list[Any]:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await publish_with_headers(
                bus,
                event,
                **{
                    headers.ORIGINAL_ROUTING_KEY: "G01.status_changed",
                    headers.FIRST_FAILURE: "2020-01-01T00:00:00+00:00",
                },
            )
            return await dead_letters(vhost, 1, timeout=5)

    [dead] = asyncio.run(scenario())
    [seen] = handler.seen
    assert seen.unit == "H29"
    assert dead.headers[headers.ORIGINAL_ROUTING_KEY] == ROUTING_KEY
    assert dead.headers[headers.FIRST_FAILURE] != "2020-01-01T00:00:00+00:00"


# --- the broker's delivery limit (a message that keeps killing its consumer) -----------------


def _returned_until_dead_lettered(url: str, give_back: str) -> int:
    """Take the one message from portal.sync and give it back without an ack, again and
    again, until the broker moves it away; how many times it was delivered."""
    deliveries = 0
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for _ in range(200):
            channel = connection.channel()
            method, _properties, _body = channel.basic_get(SYNC_QUEUE, auto_ack=False)
            if method is not None:
                deliveries += 1
                if give_back == "nack":
                    channel.basic_nack(method.delivery_tag, requeue=True)
                # either way the channel closes with the message unacked, as a crash would
                channel.close()
                continue
            channel.close()
            dlq = connection.channel()
            waiting = dlq.queue_declare(DEAD_LETTER_QUEUE, passive=True).method.message_count
            dlq.close()
            if waiting:
                return deliveries
            connection.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            connection.close()
    raise AssertionError(f"still not dead-lettered after {deliveries} deliveries")


@pytest.mark.parametrize("give_back", ["nack", "close"], ids=["nack-requeue", "channel-closed"])
def test_a_message_returned_more_often_than_the_delivery_limit_is_dead_lettered_by_the_broker(
    vhost: str, give_back: str
) -> None:
    event = a_status_changed()

    async def scenario() -> tuple[int, list[Any]]:
        async with bus_in(vhost, fast_settings(delivery_limit=2)) as bus:
            await bus.publish(event)
            deliveries = await asyncio.to_thread(_returned_until_dead_lettered, vhost, give_back)
            return deliveries, await take_all(vhost)

    deliveries, [dead] = asyncio.run(scenario())

    assert deliveries == 3  # the first delivery, then two more: the limit is on redeliveries
    assert dead.body == encode_event(event)
    assert (dead.message_id, dead.type, dead.app_id, dead.timestamp) == identity_of(event)
    [death] = dead.headers["x-death"]
    assert death["reason"] == "delivery_limit"
    assert death["queue"] == SYNC_QUEUE
    assert death["routing-keys"] == [ROUTING_KEY]


# --- dedup -----------------------------------------------------------------------------------


def test_the_same_event_published_twice_is_handled_once(vhost: str) -> None:
    event = a_status_changed()
    handler = Recorder()

    async def scenario() -> int:
        async with bus_in(vhost) as bus, consuming(bus, handler) as [worker]:
            await bus.publish(event)
            await bus.publish(event)
            await eventually(lambda: worker.consumer.handled == 2, what="both copies acked")
            return await depth(vhost, SYNC_QUEUE)

    assert asyncio.run(scenario()) == 0
    assert handler.event_ids() == [str(event.event_id)]


def test_two_copies_of_one_event_arriving_together_are_handled_once(vhost: str) -> None:
    event = a_status_changed()
    handler = Recorder(delay=0.2)  # the second copy arrives while the first is in flight

    async def scenario() -> None:
        async with bus_in(vhost) as bus, consuming(bus, handler) as [worker]:
            await bus.publish(event, event)
            await eventually(lambda: worker.consumer.handled == 2, what="both copies acked")

    asyncio.run(scenario())
    assert handler.event_ids() == [str(event.event_id)]


def test_the_retry_of_a_failed_attempt_is_not_dropped_as_a_duplicate(vhost: str) -> None:
    event = a_status_changed()
    handler = Recorder(fail=lambda m: TransientError("busy") if m.attempt == 1 else None)

    async def scenario() -> None:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await bus.publish(event)
            await eventually(lambda: len(handler.seen) == 2, what="the retry reaching handler")

    asyncio.run(scenario())
    assert [m.attempt for m in handler.attempts_of(str(event.event_id))] == [1, 2]


def test_a_copy_the_broker_redelivers_after_a_failed_attempt_is_handled_again(
    vhost: str,
) -> None:
    # Without Retries in the chain, a handler's exception reaches the consumer, which gives
    # the message back to the broker: the path taken when not even a retry copy could be
    # published. The redelivery must reach the handler, not be dropped by the dedup.
    event = a_status_changed()
    handler = Recorder(fail=lambda m: RuntimeError("crashed") if not m.redelivered else None)

    async def scenario() -> None:
        async with bus_in(vhost) as bus:
            worker = bus.consumer(handler, without=(Retries,))
            await worker.start()
            try:
                await bus.publish(event)
                await eventually(lambda: len(handler.seen) == 2, what="the redelivery")
            finally:
                await worker.stop()

    asyncio.run(scenario())
    assert [m.redelivered for m in handler.seen] == [False, True]


# --- flow control ----------------------------------------------------------------------------


def test_prefetch_bounds_the_messages_handled_at_once(vhost: str) -> None:
    running = 0
    most = 0

    async def slow(message: Message) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1

    async def scenario() -> None:
        async with bus_in(vhost) as bus, consuming(bus, slow, prefetch=4) as [worker]:
            await bus.publish(*[a_status_changed(seq=n) for n in range(1, 41)])
            await eventually(lambda: worker.consumer.handled == 40, what="40 handled")

    asyncio.run(scenario())
    assert most == 4


def test_until_idle_returns_once_the_queue_is_drained(vhost: str) -> None:
    handler = Recorder()

    async def scenario() -> int:
        async with bus_in(vhost) as bus:
            await bus.publish(*[a_status_changed(seq=n) for n in range(1, 21)])
            worker = bus.consumer(handler)
            await worker.connection.start(timeout=10)
            await asyncio.wait_for(worker.consumer.run(until_idle=0.3), 15)
            await worker.connection.close()
            await asyncio.sleep(0.2)  # anything left unacked would be back in the queue
            return await depth(vhost, SYNC_QUEUE)

    assert asyncio.run(scenario()) == 0  # every message handled was acked before it returned
    assert len(handler.seen) == 20


def test_every_handled_message_is_acked_whatever_order_the_handlers_finish_in(
    vhost: str,
) -> None:
    events = [a_status_changed(seq=n) for n in range(1, 101)]
    refused = {str(event.event_id) for event in events[::7]}

    async def handler(message: Message) -> None:
        assert message.event is not None
        # Later deliveries often finish first, and some end in the dead-letter queue.
        await asyncio.sleep((3 - message.event.seq % 4) * 0.01)
        if message.message_id in refused:
            raise PermanentError("refused")

    async def scenario() -> tuple[int, int]:
        async with bus_in(vhost) as bus:
            await bus.publish(*events)
            async with consuming(bus, handler, prefetch=20) as [worker]:
                await eventually(lambda: worker.consumer.handled == len(events), what="all")
            # The consumer has stopped and closed its channel: anything unacked went back.
            await asyncio.sleep(0.2)
            return await depth(vhost, SYNC_QUEUE), await depth(vhost, DEAD_LETTER_QUEUE)

    assert asyncio.run(scenario()) == (0, len(refused))


def test_a_consumer_created_on_an_already_open_connection_starts_consuming(vhost: str) -> None:
    handler = Recorder()

    async def scenario() -> None:
        async with bus_in(vhost) as bus:
            await bus.publish(a_status_changed())
            connection = Connection(vhost, name="opened-first")
            await connection.start(timeout=10)
            consumer = Consumer(connection, SYNC_QUEUE, handler)  # after the connection is up
            run = asyncio.create_task(consumer.run())
            try:
                await eventually(lambda: len(handler.seen) == 1, timeout=5, what="a delivery")
            finally:
                consumer.stop()
                await asyncio.wait_for(run, 10)
                await connection.close()

    asyncio.run(scenario())
