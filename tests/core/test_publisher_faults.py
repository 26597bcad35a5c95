"""Publishing through broker faults: the connection is closed under the publisher's feet."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from broker import BrokerControl
from bus.broker import Channel, Connection
from bus.declarations import apply_topology
from bus.publisher import EventPublisher, Publisher
from bus.settings import Settings
from bus.topology import SYNC_QUEUE, topology
from core.helpers import drain, vhost_of
from factories import a_dossier, a_status_changed
from schemas import Event

EVENTS = 20_000
CLOSE_AT = (EVENTS // 4, EVENTS // 2, EVENTS * 3 // 4)  # events handed over so far
BURST, PAUSE = 200, 0.04  # about 5,000 events/s: every close lands mid-publish


def close_connections_of(control: BrokerControl, vhost: str) -> None:
    """Close every client connection to `vhost` by force, as a broker restart would.

    Not `control.close_all_connections()`: without --vhost or --global, rabbitmqctl closes
    only the connections of the default vhost "/", and this test has a vhost of its own.
    """
    control.run("close_all_connections", "--vhost", vhost, "test: forced close")


@dataclass
class Run:
    outcomes: list[BaseException | None] = field(default_factory=list)
    sent_at_close: list[int] = field(default_factory=list)  # events handed over at each close
    opens: int = 0  # channels the connection opened: 1 + one per reconnect
    in_flight: list[int] = field(default_factory=list)  # unconfirmed just after each open


async def publish_through_closes(url: str, events: list[Event], control: BrokerControl) -> Run:
    run = Run()
    connection = Connection(url, name="tests.core.faults", max_delay=0.5)
    publisher = Publisher(connection)

    async def count_opens(channel: Channel) -> None:  # runs after the publisher's listener
        run.opens += 1
        run.in_flight.append(publisher.in_flight)
        await channel.close()

    connection.on_open(count_opens)
    await connection.start(timeout=10)
    try:
        _, mismatches = await apply_topology(connection, topology(Settings()))
        assert mismatches == []
        events_publisher = EventPublisher(publisher)
        sent: list[asyncio.Future[None]] = []
        closing: asyncio.Task[None] | None = None

        async def close_connections() -> None:
            await asyncio.to_thread(close_connections_of, control, vhost_of(url))
            run.sent_at_close.append(len(sent))

        for event in events:
            if len(sent) in (*CLOSE_AT, EVENTS - BURST) and closing is not None:
                await closing  # each close is over before the next one, or the last burst
            if len(sent) in CLOSE_AT:
                closing = asyncio.create_task(close_connections())
            sent.append(await events_publisher.send(event))
            if len(sent) % BURST == 0:
                await asyncio.sleep(PAUSE)
        run.outcomes = await asyncio.wait_for(asyncio.gather(*sent, return_exceptions=True), 120)
    finally:
        await connection.close()
    return run


def test_every_event_reaches_the_queue_when_the_connection_is_closed_three_times_mid_publish(
    vhost: str, broker_control: BrokerControl
) -> None:
    dossier = a_dossier()
    events: list[Event] = [a_status_changed(seq=n, dossier=dossier) for n in range(1, EVENTS + 1)]
    ids = [str(event.event_id) for event in events]

    run = asyncio.run(publish_through_closes(vhost, events, broker_control))

    in_queue = Counter(message.properties.message_id for message in drain(vhost, SYNC_QUEUE))
    confirmed = {id_ for id_, outcome in zip(ids, run.outcomes, strict=True) if outcome is None}
    failures = Counter(type(o).__name__ for o in run.outcomes if o is not None)
    missing = set(ids) - set(in_queue)
    report = (
        f"{EVENTS} events; closes after {run.sent_at_close} were handed over; "
        f"{run.opens} channel opens, {run.in_flight} unconfirmed just after each; "
        f"{len(confirmed)} confirmed, failed {dict(failures)}; "
        f"in the queue {len(in_queue)} distinct, "
        f"{sum(in_queue.values()) - len(in_queue)} duplicates, {len(missing)} missing "
        f"(of which {len(missing & confirmed)} confirmed)"
    )
    print(report)

    assert len(run.sent_at_close) == 3, report
    assert all(0 < sent < EVENTS for sent in run.sent_at_close), report
    assert run.opens == 1 + 3, report  # reconnected by itself after every close
    assert not missing & confirmed, report  # a confirmed event is never lost
    assert not missing, report  # nor is an unconfirmed one: the publisher sends it again
    assert set(in_queue) == set(ids), report
    assert not failures, report
