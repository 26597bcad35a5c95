"""Confirmed, pipelined publishing, and contract events as AMQP messages."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bus import headers
from bus.declarations import apply_topology
from bus.errors import Nacked, PublishError, Unroutable
from bus.message import CONTENT_TYPE, Message, Outgoing
from bus.publisher import EventPublisher, Publisher, event_message
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey
from bus.topology import EVENTS_EXCHANGE, SYNC_QUEUE, topology
from core.helpers import Received, connected, declare_queue, drain, get_one, publishing
from factories import a_status_changed
from schemas import ContractError, decode_event, encode_event

ROUTABLE = "H29.status_changed"


def an_outgoing(routing_key: str = ROUTABLE, *, exchange: str = EVENTS_EXCHANGE) -> Outgoing:
    message_id = str(uuid.uuid4())
    return Outgoing(
        exchange, routing_key, b'{"id": "%s"}' % message_id.encode(), message_id=message_id
    )


@asynccontextmanager
async def a_bus(url: str, *, window: int = 1000) -> AsyncIterator[Publisher]:
    """A publisher on a vhost that holds the whole topology."""
    async with publishing(url, window=window) as (connection, publisher):
        _, mismatches = await apply_topology(connection, topology(Settings()))
        assert mismatches == []
        yield publisher


def ids_in(url: str, queue: str) -> list[str | None]:
    return [message.properties.message_id for message in drain(url, queue)]


# Outcomes of a publish


def test_an_unroutable_publish_fails_with_unroutable_and_the_next_routable_one_succeeds(
    vhost: str,
) -> None:
    unroutable, routable = an_outgoing("H29.no_such_type"), an_outgoing()

    async def scenario() -> Unroutable:
        async with a_bus(vhost) as publisher:
            with pytest.raises(Unroutable) as refused:
                await publisher.publish(unroutable)
            await publisher.publish(routable)
            return refused.value

    error = asyncio.run(scenario())

    assert (error.exchange, error.routing_key) == (EVENTS_EXCHANGE, "H29.no_such_type")
    assert "H29.no_such_type" in str(error)
    assert ids_in(vhost, SYNC_QUEUE) == [routable.message_id]


def test_only_the_unroutable_messages_of_a_pipelined_batch_fail(vhost: str) -> None:
    batch = [an_outgoing("H29.no_such_type" if n % 3 == 0 else ROUTABLE) for n in range(30)]

    async def scenario() -> list[BaseException | None]:
        async with a_bus(vhost) as publisher:
            sent = [await publisher.send(message) for message in batch]
            return await asyncio.gather(*sent, return_exceptions=True)

    outcomes = asyncio.run(scenario())

    for message, outcome in zip(batch, outcomes, strict=True):
        if message.routing_key == ROUTABLE:
            assert outcome is None, message
        else:
            assert isinstance(outcome, Unroutable), message
    assert sorted(ids_in(vhost, SYNC_QUEUE)) == sorted(  # type: ignore[type-var]
        m.message_id for m in batch if m.routing_key == ROUTABLE
    )


def test_a_message_the_broker_refuses_fails_with_nacked(vhost: str) -> None:
    declare_queue(vhost, "tiny", {"x-max-length": 1, "x-overflow": "reject-publish"})
    declare_queue(vhost, "roomy")
    first, second = an_outgoing("tiny", exchange=""), an_outgoing("tiny", exchange="")

    async def scenario() -> tuple[BaseException | None, ...]:
        async with publishing(vhost) as (_, publisher):
            outcomes = await asyncio.gather(
                await publisher.send(first), await publisher.send(second), return_exceptions=True
            )
            await publisher.publish(an_outgoing("roomy", exchange=""))
            return tuple(outcomes)

    outcomes = asyncio.run(scenario())

    assert outcomes[0] is None
    assert isinstance(outcomes[1], Nacked)
    assert ids_in(vhost, "tiny") == [first.message_id]
    assert len(ids_in(vhost, "roomy")) == 1


def test_a_publish_that_kills_the_channel_fails_and_the_publisher_opens_another(
    vhost: str,
) -> None:
    async def scenario() -> BaseException:
        async with a_bus(vhost) as publisher:
            with pytest.raises(PublishError) as failed:
                await publisher.publish(an_outgoing(exchange="no.such.exchange"))
            await publisher.publish(an_outgoing())
            return failed.value

    error = asyncio.run(scenario())

    assert "404" in str(error)
    assert len(ids_in(vhost, SYNC_QUEUE)) == 1


# Pipelining


def test_confirms_are_pipelined_so_many_messages_await_their_confirm_at_once(vhost: str) -> None:
    async def scenario() -> tuple[int, int]:
        async with a_bus(vhost) as publisher:
            sent = [await publisher.send(an_outgoing()) for _ in range(500)]
            in_flight_after_sending = publisher.in_flight
            await asyncio.gather(*sent)
            return in_flight_after_sending, publisher.in_flight

    in_flight_after_sending, in_flight_after_confirms = asyncio.run(scenario())

    assert in_flight_after_sending > 1
    assert in_flight_after_confirms == 0
    assert len(ids_in(vhost, SYNC_QUEUE)) == 500


def test_no_more_than_the_window_of_messages_is_ever_unconfirmed(vhost: str) -> None:
    async def scenario() -> int:
        most = 0
        async with a_bus(vhost, window=10) as publisher:
            sent = []
            for _ in range(300):
                sent.append(await publisher.send(an_outgoing()))
                most = max(most, publisher.in_flight)
            await asyncio.gather(*sent)
        return most

    assert asyncio.run(scenario()) == 10
    assert len(ids_in(vhost, SYNC_QUEUE)) == 300


def test_flush_waits_until_every_message_sent_so_far_is_confirmed(vhost: str) -> None:
    async def scenario() -> tuple[int, list[bool]]:
        async with a_bus(vhost) as publisher:
            sent = [await publisher.send(an_outgoing()) for _ in range(200)]
            await publisher.flush()
            return publisher.in_flight, [future.done() for future in sent]

    in_flight, done = asyncio.run(scenario())

    assert in_flight == 0
    assert all(done)


def test_flush_returns_at_once_when_nothing_was_sent(vhost: str) -> None:
    async def scenario() -> None:
        async with a_bus(vhost) as publisher:
            await asyncio.wait_for(publisher.flush(), timeout=0.1)

    asyncio.run(scenario())


def test_flush_also_returns_once_the_broker_has_refused_what_it_would_not_take(
    vhost: str,
) -> None:
    batch = [an_outgoing("H29.no_such_type" if n % 2 else ROUTABLE) for n in range(100)]

    async def scenario() -> list[BaseException | None]:
        async with a_bus(vhost) as publisher:
            sent = [await publisher.send(message) for message in batch]
            await asyncio.wait_for(publisher.flush(), timeout=10)
            assert all(future.done() for future in sent)
            return [future.exception() for future in sent]

    outcomes = asyncio.run(scenario())

    assert [type(outcome) for outcome in outcomes] == [type(None), Unroutable] * 50


def test_a_publisher_made_on_an_already_open_connection_publishes(vhost: str) -> None:
    message = an_outgoing(SYNC_QUEUE, exchange="")
    declare_queue(vhost, SYNC_QUEUE)

    async def scenario() -> None:
        async with connected(vhost) as connection:
            publisher = Publisher(connection)
            await asyncio.wait_for(publisher.publish(message), timeout=5)

    asyncio.run(scenario())

    assert ids_in(vhost, SYNC_QUEUE) == [message.message_id]


# Contract events


def as_delivered(received: Received) -> Message:
    """What a consumer of the events exchange would make of a message read back."""
    properties = received.properties
    return Message(
        body=received.body,
        exchange=EVENTS_EXCHANGE,
        routing_key=received.routing_key,
        headers=properties.headers or {},
        redelivered=False,
        delivery_tag=1,
        message_id=properties.message_id,
        content_type=properties.content_type,
        type=properties.type,
        app_id=properties.app_id,
        user_id=properties.user_id,
        timestamp=properties.timestamp,
    )


def headers_of(received: Received) -> dict[str, Any]:
    return {
        name: value
        for name, value in (received.properties.headers or {}).items()
        if name != "x-delivery-count"  # a quorum queue's own count
    }


def test_an_event_is_published_persistent_as_json_under_its_unit_and_type_with_its_identity_in_properties(  # noqa: E501
    vhost: str,
) -> None:
    event = a_status_changed(seq=7)

    async def scenario() -> None:
        async with a_bus(vhost) as publisher:
            await EventPublisher(publisher).publish(event)

    asyncio.run(scenario())

    received = get_one(vhost, SYNC_QUEUE)
    assert received is not None
    properties = received.properties
    assert received.routing_key == f"{event.unit}.{event.event_type}" == "H29.status_changed"
    assert properties.delivery_mode == 2
    assert properties.content_type == CONTENT_TYPE == "application/json"
    # The event's identity travels in the standard properties...
    assert properties.message_id == str(event.event_id)
    assert properties.type == "status_changed"
    assert properties.app_id == "igate-hcm"
    assert properties.timestamp == int(event.occurred_at.timestamp()) == 1705318200
    # ...and headers carry only what has no property of its own.
    assert headers_of(received) == {
        headers.DOSSIER_CODE: str(event.dossier_code),
        headers.SEQ: 7,
    }
    assert decode_event(received.body) == event


def _hmac_keys() -> tuple[Signer, VerifyKey]:
    secret = b"s" * 32
    return (
        Signer("igate-hcm-2026", "hmac-sha256", secret),
        VerifyKey("igate-hcm-2026", "igate-hcm", "hmac-sha256", secret),
    )


def _ed25519_keys() -> tuple[Signer, VerifyKey]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    raw = private.private_bytes_raw()
    return (
        Signer("igate-hcm-ed", "ed25519", raw),
        VerifyKey("igate-hcm-ed", "igate-hcm", "ed25519", public),
    )


@pytest.mark.parametrize("keys", [_hmac_keys, _ed25519_keys], ids=["hmac-sha256", "ed25519"])
def test_an_event_published_with_a_signer_carries_a_signature_its_connector_key_verifies(
    vhost: str, keys: Callable[[], tuple[Signer, VerifyKey]]
) -> None:
    signer, verify_key = keys()
    event = a_status_changed()

    async def scenario() -> None:
        async with a_bus(vhost) as publisher:
            await EventPublisher(publisher, signer).publish(event)

    asyncio.run(scenario())

    received = get_one(vhost, SYNC_QUEUE)
    assert received is not None
    sent_headers = headers_of(received)
    # The key id and the signature, nothing more: the registry knows each key's algorithm.
    assert set(sent_headers) == {
        headers.DOSSIER_CODE,
        headers.SEQ,
        headers.KEY_ID,
        headers.SIGNATURE,
    }
    assert sent_headers[headers.KEY_ID] == signer.key_id
    assert base64.b64decode(sent_headers[headers.SIGNATURE])
    KeyRing([verify_key]).verify(as_delivered(received))  # raises if it does not match


def test_an_event_already_json_is_published_byte_for_byte_and_signed_over_those_bytes(
    vhost: str,
) -> None:
    # An outbox row: the event's JSON as stored, not as encode_event would write it.
    event = a_status_changed(seq=3)
    stored = json.dumps(event.model_dump(mode="json"), indent=2, ensure_ascii=True).encode()
    assert stored != encode_event(event)
    signer, verify_key = _hmac_keys()

    async def scenario() -> None:
        async with a_bus(vhost) as publisher:
            await (await EventPublisher(publisher, signer).send_body(stored))

    asyncio.run(scenario())

    received = get_one(vhost, SYNC_QUEUE)
    assert received is not None
    assert received.body == stored
    assert received.routing_key == "H29.status_changed"
    properties = received.properties
    assert (properties.message_id, properties.type, properties.app_id, properties.timestamp) == (
        str(event.event_id),
        "status_changed",
        "igate-hcm",
        int(event.occurred_at.timestamp()),
    )
    assert headers_of(received)[headers.SEQ] == 3
    KeyRing([verify_key]).verify(as_delivered(received))


@pytest.mark.parametrize(
    "body",
    [b"{not JSON", json.dumps({"event_type": "status_changed"}).encode()],
    ids=["not-json", "not-the-contract"],
)
def test_json_that_is_not_a_contract_event_is_refused_before_anything_is_published(
    vhost: str, body: bytes
) -> None:
    async def scenario() -> None:
        async with a_bus(vhost) as publisher:
            with pytest.raises(ContractError):
                await EventPublisher(publisher, _hmac_keys()[0]).send_body(body)
            assert publisher.in_flight == 0

    asyncio.run(scenario())

    assert get_one(vhost, SYNC_QUEUE) is None


def test_a_published_event_reads_back_through_another_amqp_client(vhost: str) -> None:
    """kombu's py-amqp transport, a client the bus does not use, sees the same message."""
    import kombu

    event = a_status_changed(seq=3)
    declare_queue(vhost, "interop", {"x-queue-type": "quorum"})

    async def publish() -> None:
        message = replace(event_message(event, None), exchange="", routing_key="interop")
        async with publishing(vhost) as (_, publisher):
            await publisher.publish(message)

    asyncio.run(publish())
    with kombu.Connection(vhost.replace("amqp://", "pyamqp://", 1)) as connection:
        received = connection.default_channel.basic_get("interop", no_ack=True)
        assert received is not None
        assert received.properties["message_id"] == str(event.event_id)
        assert received.properties["type"] == "status_changed"
        assert received.properties["application_headers"][headers.SEQ] == 3
        assert received.body == encode_event(event)
