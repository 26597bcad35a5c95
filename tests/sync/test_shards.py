"""The sharded sync (BUS_SYNC_SHARDS=4): the hash exchange keeps each dossier on one shard,
workers share the shards with a single active consumer each and take over a dead one's,
`bus topology apply` moves a single portal.sync into the shards, and what the bus itself
re-sends (reconcile, dead-letter replay) finds its shard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
from click.testing import CliRunner
from shard_support import shard_consumers, simulator_process, worker_processes
from sync_support import (
    AGENCY,
    CONNECTOR,
    KEY_ID,
    SECRET,
    Portal,
    bus_in,
    depth,
    differences,
    finals,
    first,
    history,
    outcomes,
    portal_sim,
    sample,
    sync_service,
    sync_settings,
)

from broker import management
from bus import headers
from bus.broker import Connection
from bus.cli import main as cli
from bus.declarations import apply_topology
from bus.errors import InvalidMessage
from bus.message import Message
from bus.middleware import Decode
from bus.ops import Operator
from bus.publisher import EventPublisher, Publisher, event_message
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey
from bus.topology import (
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
    SHARDS_EXCHANGE,
    SYNC_QUEUE,
    retry_queue_name,
    routing_key,
    shard_queue_name,
    topology,
)
from connectors.sample import lifecycles
from factories import a_status_changed
from schemas import Event, encode_event

SHARDS = 4
SHARD_QUEUES = [shard_queue_name(shard) for shard in range(SHARDS)]
ADMIN = Operator.national("an")


def sharded(settings: Settings) -> Settings:
    return settings.model_copy(update={"sync_shards": SHARDS})


def take_shard(url: str, queue: str) -> list[tuple[str, int, str]]:
    """Every message of a shard, taken (basic.get is refused on a single-active-consumer
    quorum queue, so it is consumed): (dossier code, seq, event id) in queue order."""
    taken: list[tuple[str, int, str]] = []
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        channel = connection.channel()
        for method, properties, body in channel.consume(queue, inactivity_timeout=1):
            if method is None:
                break
            event = json.loads(body)
            taken.append((event["dossier_code"], event["seq"], str(properties.message_id)))
            channel.basic_ack(method.delivery_tag)
        channel.cancel()
    return taken


def shard_depths(url: str) -> dict[str, int]:
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        channel = connection.channel()
        return {
            queue: int(channel.queue_declare(queue, passive=True).method.message_count)
            for queue in SHARD_QUEUES
        }


def interleaved(dossiers: list[list[Event]]) -> list[Event]:
    """Each dossier's events in order, dossiers taking turns, as busy systems send them."""
    longest = max(map(len, dossiers))
    return [life[i] for i in range(longest) for life in dossiers if i < len(life)]


# ---- routing --------------------------------------------------------------------------------


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    with portal_sim(tmp_path) as simulator:
        yield simulator


def test_the_hash_exchange_spreads_dossiers_over_the_four_shards_and_keeps_each_on_one(
    vhost: str, tmp_path: Path
) -> None:
    settings = sharded(sync_settings(vhost, "http://127.0.0.1:9", tmp_path))
    dossiers = sample(200, seed=91)
    events = interleaved(dossiers)

    async def scenario() -> None:
        async with bus_in(settings) as bus:
            await bus.publish(events)

    asyncio.run(scenario())
    shard_of: dict[str, set[str]] = defaultdict(set)
    per_shard: Counter[str] = Counter()
    seqs: dict[str, list[int]] = defaultdict(list)
    for queue in SHARD_QUEUES:
        for code, seq, _ in take_shard(vhost, queue):
            shard_of[code].add(queue)
            per_shard[queue] += 1
            seqs[code].append(seq)

    assert sum(per_shard.values()) == len(events)
    assert {code for code, queues in shard_of.items() if len(queues) > 1} == set()
    dossiers_per_shard = Counter(next(iter(queues)) for queues in shard_of.values())
    assert set(dossiers_per_shard) == set(SHARD_QUEUES)
    assert min(dossiers_per_shard.values()) >= 25, dossiers_per_shard  # of 200, ~50 each
    assert all(found == sorted(found) for found in seqs.values())


def test_a_header_that_names_another_dossier_is_refused_as_a_breach_of_the_contract() -> None:
    """The header picks the shard: a lie would put one dossier on two shards."""
    event = a_status_changed(3)
    message = Message(
        body=encode_event(event),
        exchange=EVENTS_EXCHANGE,
        routing_key=routing_key(event.unit, event.event_type),
        headers={headers.DOSSIER_CODE: "000.00.01.H29-240115-9999"},
        redelivered=False,
        delivery_tag=1,
    )
    reached: list[Message] = []

    async def handler(arrived: Message) -> None:
        reached.append(arrived)

    with pytest.raises(InvalidMessage) as refused:
        asyncio.run(Decode()(message, handler))

    assert refused.value.reason == "contract"
    assert "000.00.01.H29-240115-9999" in str(refused.value)
    assert reached == []


@pytest.mark.parametrize("header", ["same", "absent", "bytes"])
def test_a_header_that_names_its_own_dossier_or_no_header_at_all_is_accepted(
    header: str,
) -> None:
    """Without the header every such message hashes alike, onto one shard: no dossier is
    split, so nothing to refuse."""
    event = a_status_changed(3)
    code = str(event.dossier_code)
    values = {"same": {headers.DOSSIER_CODE: code}, "absent": {}}.get(
        header, {headers.DOSSIER_CODE: code.encode()}
    )
    message = Message(
        body=encode_event(event),
        exchange=EVENTS_EXCHANGE,
        routing_key=routing_key(event.unit, event.event_type),
        headers=dict(values),
        redelivered=False,
        delivery_tag=1,
    )
    reached: list[Message] = []

    async def handler(arrived: Message) -> None:
        reached.append(arrived)

    asyncio.run(Decode()(message, handler))

    assert reached == [message]


def test_the_bus_s_copies_through_the_shards_exchange_keep_its_headers_a_connector_s_do_not(
    vhost: str,
) -> None:
    """Only the bus may publish to portal.sync.shards: what arrives through it is trusted
    like a copy through the default exchange; what a connector sent through dossier.events
    loses the x-bus-* headers it carried, on its shard as on portal.sync."""
    settings = Settings(amqp_url=vhost, sync_shards=SHARDS)
    event = a_status_changed(4)
    forged = {headers.PUBLISHED_BY: "someone-else", headers.RESYNC: "forged"}

    async def scenario() -> list[Message]:
        connection = Connection(vhost, name="test-shards")
        publisher = Publisher(connection)
        await connection.start(timeout=10)
        try:
            await apply_topology(connection, topology(settings))
            by_connector = event_message(event, None, user_id=publisher.user)
            by_connector = replace(by_connector, headers={**by_connector.headers, **forged})
            by_bus = replace(by_connector, exchange=SHARDS_EXCHANGE, routing_key="")
            await publisher.publish(by_connector)
            await publisher.publish(by_bus)
            received: list[Message] = []
            channel = await connection.channel()
            for queue in SHARD_QUEUES:
                await channel.consume(
                    queue, received.append, prefetch=10, arguments=None,
                    internal=(SHARDS_EXCHANGE,),
                )  # fmt: skip
            deadline = time.monotonic() + 10
            while len(received) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await channel.close()
            return received
        finally:
            await connection.close()

    through_events, through_shards = asyncio.run(scenario())

    assert through_events.exchange == EVENTS_EXCHANGE
    assert headers.RESYNC not in through_events.headers
    assert through_events.published_by == "guest"  # the broker vouches for user_id
    assert through_shards.exchange == ""
    assert through_shards.headers[headers.RESYNC] == "forged"
    assert through_shards.published_by == "someone-else"


# ---- failover -------------------------------------------------------------------------------


@pytest.fixture
def worker_env(vhost: str, tmp_path: Path) -> dict[str, str]:
    keys = KeyRing([VerifyKey(KEY_ID, CONNECTOR, "hmac-sha256", SECRET)]).save(
        tmp_path / "keys.json"
    )
    return {
        "BUS_AMQP_URL": vhost,
        "BUS_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite3'}",  # one file, all workers
        "BUS_VERIFY_KEYS_FILE": str(keys),
        "BUS_SYNC_SHARDS": str(SHARDS),
        "BUS_SYNC_RATE": "2000",
        "BUS_RETRY_DELAYS": "[0.2, 0.5, 1.0]",
        "BUS_MAX_ATTEMPTS": "20",
        "BUS_RECONNECT_MAX_DELAY": "0.5",
        "BUS_LOG_LEVEL": "warning",
        "BUS_LOG_FORMAT": "json",
    }


def test_with_three_workers_on_four_shards_killing_one_moves_its_shards_within_5_s_in_order(
    vhost: str, management_url: str, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    """Three `bus sync run --worker i/3` processes share one SQLite state store; events of
    600 dossiers flow for about 3 s, and one second in, the worker that is the active
    consumer of the most shards (as the workers' /metrics show what each handled) is killed
    (SIGKILL). Its shards are taken over when the other workers, standing by, start handling
    their messages: that is measured from their /metrics, every 50 ms; the management API,
    whose consumer list lags behind the broker by its statistics interval (5 s), confirms
    later who is active. In the end the portal holds
    every dossier as its last event left it, and no dossier ever went back to an older
    snapshot."""
    dossiers = lifecycles(AGENCY, 600, seed=97, start=datetime(2025, 7, 2, 1, tzinfo=UTC))
    events = interleaved(dossiers)
    settings = Settings(amqp_url=vhost, sync_shards=SHARDS)
    signer = Signer(KEY_ID, "hmac-sha256", SECRET)

    async def declare() -> None:
        connection = Connection(vhost, name="test-topology")
        await connection.start(timeout=10)
        try:
            await apply_topology(connection, topology(settings))
        finally:
            await connection.close()

    async def publish(rate: float) -> None:
        connection = Connection(vhost, name="test-connector")
        publisher = EventPublisher(Publisher(connection), signer)
        await connection.start(timeout=10)
        try:
            started = time.monotonic()
            confirms = []
            for i, event in enumerate(events):
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                confirms.append(await publisher.send(event))
            await asyncio.gather(*confirms)
        finally:
            await connection.close()

    asyncio.run(declare())
    with simulator_process(tmp_path) as portal_url:
        env = {**worker_env, "BUS_PORTAL_URL": portal_url}
        with worker_processes(3, env, tmp_path) as workers:
            by_name = {worker.name: worker for worker in workers}
            # Every worker subscribed to every shard (its own, then the others' 1.5 s later).
            deadline = time.monotonic() + 30
            while True:
                seen = shard_consumers(management_url, vhost)
                if all(
                    seen.get(queue) and seen[queue].active
                    and len(seen[queue].waiting | {seen[queue].active}) == 3
                    for queue in SHARD_QUEUES
                ):  # fmt: skip
                    break
                assert time.monotonic() < deadline, seen
                time.sleep(0.2)
            flow = asyncio.new_event_loop()
            publishing = flow.create_task(publish(rate=len(events) / 3.0))
            flow.run_until_complete(asyncio.sleep(1.0))
            # Who is active where, from what each worker handled (the management API's view
            # may be seconds old).
            handled = {worker.name: worker.handled() for worker in workers}
            active = {q: name for name, found in handled.items() for q in found}
            holding = Counter(active.values())
            victim = by_name[holding.most_common(1)[0][0]]
            moved = [queue for queue in SHARD_QUEUES if active.get(queue) == victim.name]
            survivors = [worker for worker in workers if worker is not victim]
            before = {w.name: handled[w.name] for w in survivors}
            killed_at = time.monotonic()
            victim.kill()
            taken_over: dict[str, float] = {}
            while len(taken_over) < len(moved) and time.monotonic() - killed_at < 10:
                flow.run_until_complete(asyncio.sleep(0.05))
                now = {w.name: w.handled() for w in survivors}
                for queue in moved:
                    if queue not in taken_over and any(
                        now[name][queue] > before[name][queue] for name in now
                    ):
                        taken_over[queue] = time.monotonic() - killed_at
            flow.run_until_complete(publishing)
            flow.close()

            portal = Portal(portal_url)
            try:
                deadline = time.monotonic() + 60
                while first(differences(portal, finals(dossiers))):
                    assert time.monotonic() < deadline, first(differences(portal, finals(dossiers)))
                    time.sleep(0.5)
                order = history(portal, dossiers)
            finally:
                portal.http.close()
            deadline = time.monotonic() + 15
            while True:
                seen = shard_consumers(management_url, vhost)
                actives = {queue: seen[queue].active for queue in moved if queue in seen}
                if len(actives) == len(moved) and set(actives.values()) <= set(by_name) - {
                    victim.name
                }:
                    break
                assert time.monotonic() < deadline, actives
                time.sleep(0.2)
            dead_letters = asyncio.run(depth(vhost, DEAD_LETTER_QUEUE))

    print(f"\nshards of {victim.name} taken over after (s): {taken_over}")
    assert moved, "the victim was the active consumer of no shard"
    assert set(taken_over) == set(moved), f"of {moved}, within 10 s: {taken_over}"
    assert max(taken_over.values()) < 5.0, taken_over
    assert set(actives.values()) <= {w.name for w in survivors}
    assert order.regressions == [], first(order.regressions)
    assert order.unknown == []
    assert order.items >= len(dossiers)
    assert dead_letters == 0


# ---- migration ------------------------------------------------------------------------------


@pytest.fixture
def connector_user(management_url: str, vhost: str) -> Iterator[tuple[str, str]]:
    """A broker user of the test's own that publishes the connector's events, as `bus
    provision` makes them: only the bus itself (guest here) moves and copies them."""
    name, password = f"test-shards-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    management(management_url, "PUT", f"/api/users/{name}", {"password": password, "tags": ""})
    vhost_name = vhost.rsplit("/", 1)[1]
    management(
        management_url,
        "PUT",
        f"/api/permissions/{vhost_name}/{name}",
        {"configure": "^$", "write": f"^{EVENTS_EXCHANGE}$", "read": "^$"},
    )
    try:
        yield name, password
    finally:
        management(management_url, "DELETE", f"/api/users/{name}")


def exists(url: str, queue: str) -> bool:
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        try:
            connection.channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == 404:
                return False
            raise
    return True


def test_topology_apply_moves_a_single_portal_sync_into_four_shards_and_a_worker_applies_all(
    vhost: str, portal: Portal, tmp_path: Path, connector_user: tuple[str, str]
) -> None:
    """portal.sync holds a connector's events, and the old first retry tier holds copies on
    their way back (for a minute more): `bus topology apply` with BUS_SYNC_SHARDS=4 moves
    every one of them, deletes portal.sync and the old tier, and a sync worker on the shards
    applies them all, their signatures checked against the connector's broker user (the
    copies are the bus's own, so the first publisher travels in x-bus-published-by)."""
    user, password = connector_user
    KeyRing([VerifyKey(KEY_ID, CONNECTOR, "hmac-sha256", SECRET, unit="H29", user=user)]).save(
        tmp_path / "keys.json"
    )
    single = sync_settings(vhost, portal.url, tmp_path, retry_delays=(60.0,))
    shards = sync_settings(vhost, portal.url, tmp_path, sync_shards=SHARDS)
    dossiers = sample(40, seed=93)
    queued = interleaved(dossiers[:30])
    retrying = [life[-1] for life in dossiers[30:]]
    signer = Signer(KEY_ID, "hmac-sha256", SECRET)
    connector_url = vhost.replace("guest:guest", f"{user}:{password}")

    async def fill() -> None:
        async with bus_in(single) as bus:
            connection = Connection(connector_url, name="test-connector")
            events = EventPublisher(Publisher(connection), signer)
            await connection.start(timeout=10)
            try:
                await asyncio.gather(*[await events.send(event) for event in queued])
            finally:
                await connection.close()
            for event in retrying:  # as the Retries middleware leaves them
                message = event_message(event, signer)
                extra = {
                    headers.ATTEMPT: 2,
                    headers.ORIGINAL_EXCHANGE: EVENTS_EXCHANGE,
                    headers.ORIGINAL_ROUTING_KEY: message.routing_key,
                    headers.PUBLISHED_BY: user,
                }
                await bus.publisher.publish(
                    replace(
                        message,
                        exchange="",
                        routing_key=retry_queue_name(1),
                        headers={**message.headers, **extra},
                    )
                )

    asyncio.run(fill())
    assert asyncio.run(depth(vhost, SYNC_QUEUE)) == len(queued)
    assert asyncio.run(depth(vhost, retry_queue_name(1))) == len(retrying)
    env = {"BUS_AMQP_URL": vhost, "BUS_SYNC_SHARDS": str(SHARDS)}
    env["BUS_RETRY_DELAYS"] = "[0.2, 0.5, 1.0]"

    applied = CliRunner().invoke(cli, ["topology", "apply"], env=env)

    assert applied.exit_code == 0, applied.output
    assert f"moved    {SYNC_QUEUE}  → {SHARDS_EXCHANGE}: {len(queued)} messages" in applied.output
    assert (
        f"moved    {retry_queue_name(1)}  → {retry_queue_name(1, SHARDS)}: {len(retrying)}"
        in applied.output
    )
    assert f"deleted  {SYNC_QUEUE}" in applied.output
    assert f"{len(queued) + len(retrying)} messages moved" in applied.output
    assert not exists(vhost, SYNC_QUEUE)
    assert not exists(vhost, retry_queue_name(1))
    deadline = time.monotonic() + 10  # the new tier's 0.2 s sends the retrying ones on
    while sum(shard_depths(vhost).values()) < len(queued) + len(retrying):
        assert time.monotonic() < deadline, shard_depths(vhost)
        time.sleep(0.1)
    before = outcomes()

    async def drain() -> Counter[str]:
        async with sync_service(shards) as service:
            return await service.settled(before, len(queued) + len(retrying))

    done = asyncio.run(drain())

    assert done["applied"] >= len(dossiers)
    assert "dead_lettered" not in done
    assert not first(differences(portal, finals(dossiers)))
    assert asyncio.run(depth(vhost, DEAD_LETTER_QUEUE)) == 0
    assert sum(shard_depths(vhost).values()) == 0


def test_topology_apply_again_with_the_shards_in_place_moves_nothing(vhost: str) -> None:
    env = {"BUS_AMQP_URL": vhost, "BUS_SYNC_SHARDS": str(SHARDS)}

    first_run = CliRunner().invoke(cli, ["topology", "apply"], env=env)
    second_run = CliRunner().invoke(cli, ["topology", "apply"], env=env)

    assert first_run.exit_code == 0, first_run.output
    assert second_run.exit_code == 0, second_run.output
    assert "moved" not in second_run.output
    assert "deleted" not in second_run.output
    assert first_run.output == second_run.output


def test_a_change_of_shard_count_rehashes_what_the_shards_hold_and_back_to_one_queue(
    vhost: str, tmp_path: Path
) -> None:
    """4 shards to 2: what shards 2 and 3 held goes to 0 and 1, what 0 and 1 held is hashed
    again, nothing lost, each dossier on one shard; then back to the single portal.sync."""
    settings = sharded(sync_settings(vhost, "http://127.0.0.1:9", tmp_path))
    dossiers = sample(60, seed=95)
    events = interleaved(dossiers)

    async def fill() -> None:
        async with bus_in(settings) as bus:
            await bus.publish(events)

    asyncio.run(fill())
    delays = {"BUS_RETRY_DELAYS": "[0.2, 0.5, 1.0]"}  # as sync_settings has them
    two = {"BUS_AMQP_URL": vhost, "BUS_SYNC_SHARDS": "2", **delays}

    halved = CliRunner().invoke(cli, ["topology", "apply"], env=two)

    assert halved.exit_code == 0, halved.output
    assert not exists(vhost, shard_queue_name(2))
    assert not exists(vhost, shard_queue_name(3))
    shard_of: dict[str, set[str]] = defaultdict(set)
    taken = 0
    for queue in (shard_queue_name(0), shard_queue_name(1)):
        for code, _, _ in take_shard(vhost, queue):
            shard_of[code].add(queue)
            taken += 1
    assert taken == len(events)
    assert {code for code, queues in shard_of.items() if len(queues) > 1} == set()

    asyncio.run(fill())
    single = {"BUS_AMQP_URL": vhost, "BUS_SYNC_SHARDS": "1", **delays}

    joined = CliRunner().invoke(cli, ["topology", "apply"], env=single)

    assert joined.exit_code == 0, joined.output
    assert asyncio.run(depth(vhost, SYNC_QUEUE)) == len(events)
    assert not exists(vhost, shard_queue_name(0))
    assert not exists(vhost, shard_queue_name(1))
    assert f"deleted  {SHARDS_EXCHANGE}" in joined.output


def test_while_a_worker_consumes_a_shard_a_change_of_shard_count_changes_nothing(
    vhost: str, tmp_path: Path
) -> None:
    """A worker still handling a dossier's older events on its old shard while another
    applies its newer ones on the new could send them out of order."""
    settings = sharded(sync_settings(vhost, "http://127.0.0.1:9", tmp_path))
    events = interleaved(sample(20, seed=96))

    async def fill() -> None:
        async with bus_in(settings) as bus:
            await bus.publish(events)

    asyncio.run(fill())
    held = shard_depths(vhost)
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(vhost))) as worker:
        channel = worker.channel()
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(shard_queue_name(0), lambda *_: None)
        worker.process_data_events(time_limit=0.2)
        env = {"BUS_AMQP_URL": vhost, "BUS_SYNC_SHARDS": "2"}
        env["BUS_RETRY_DELAYS"] = "[0.2, 0.5, 1.0]"

        refused = CliRunner().invoke(cli, ["topology", "apply"], env=env)

    assert refused.exit_code == 1
    assert "nothing changed" in refused.output
    assert f"consume {shard_queue_name(0)}" in refused.output
    assert "stop the sync service" in refused.output
    assert shard_depths(vhost) == held


# ---- the bus's own re-sends -----------------------------------------------------------------


def test_reconcile_with_four_shards_requeues_what_the_portal_lost_and_the_workers_apply_it(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    settings = sharded(sync_settings(vhost, portal.url, tmp_path))
    dossiers = sample(20, seed=98)
    events = [event for life in dossiers for event in life]
    env = {
        "BUS_AMQP_URL": vhost,
        "BUS_PORTAL_URL": portal.url,
        "BUS_STATE_URL": settings.state_url.get_secret_value(),
        "BUS_SYNC_SHARDS": str(SHARDS),
    }
    before = outcomes()

    async def scenario() -> tuple[str, dict[str, int]]:
        async with bus_in(settings) as bus, sync_service(settings) as service:
            await bus.publish(events)
            await service.settled(before, len(events))
            await asyncio.to_thread(portal.reset)
            between = outcomes()
            result = await asyncio.to_thread(
                CliRunner().invoke, cli, ["reconcile", "--unit", "H29"], env=env
            )
            assert result.exit_code == 0, result.output
            await service.settled(between, len(dossiers), timeout=20)
            return result.output, dict(outcomes() - between)

    output, resync = asyncio.run(scenario())

    assert f"{len(dossiers)} re-queued" in output
    assert resync == {"applied": len(dossiers)}
    assert not first(differences(portal, finals(dossiers)))


def test_a_dead_letter_replayed_with_four_shards_reaches_its_shard_and_is_applied(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    from ops.ops_support import operating

    settings = sync_settings(
        vhost,
        portal.url,
        tmp_path,
        sync_shards=SHARDS,
        max_attempts=2,
        retry_delays=(0.2,),
        breaker_threshold=10_000,
        ops_url=f"sqlite:///{tmp_path / 'ops.sqlite3'}",
    )

    async def scenario() -> tuple[int, list[str]]:
        async with operating(settings, portal) as ops:
            made = await ops.make_dead_letters()
            await ops.dead_letters.collect()
            ids = [str(event.event_id) for event in made.unavailable]
            replayed = await ops.dead_letters.replay(ADMIN, ids)
            codes = [str(event.dossier_code) for event in made.unavailable]
            deadline = time.monotonic() + 20
            while missing := [code for code in codes if code not in portal.records()]:
                assert time.monotonic() < deadline, missing
                await asyncio.sleep(0.1)
            return replayed, missing

    replayed, missing = asyncio.run(scenario())

    assert replayed == 3
    assert missing == []


# ---- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize("given", ["0/3", "4/3", "2", "two/three"])
def test_sync_run_refuses_a_worker_that_is_not_one_of_w(given: str) -> None:
    result = CliRunner().invoke(cli, ["sync", "run", "--worker", given])

    assert result.exit_code == 2
    assert "--worker" in result.output


def test_sync_run_refuses_several_workers_on_the_single_queue() -> None:
    """portal.sync has no single active consumer: two workers taking turns on a dossier's
    events could apply them out of order."""
    result = CliRunner().invoke(
        cli, ["sync", "run", "--worker", "2/3"], env={"BUS_SYNC_SHARDS": "1"}
    )

    assert result.exit_code == 1
    assert "BUS_SYNC_SHARDS above 1" in result.output
