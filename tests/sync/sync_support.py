"""The sync service end to end, for its tests: every part real, nothing mocked.

- the broker: a virtual host of the test's own (the `vhost` fixture) holding the whole
  topology, with retry tiers short enough for a test;
- the events: sample lifecycles (`connectors.sample`), signed with the sample connector's
  key and published through dossier.events by the bus's own `EventPublisher`;
- the sync service: `bus.sync.runner.run_sync`, exactly as `bus sync run` runs it (key ring
  from a key file, portal client with its bucket and breaker, SQLite state store, consumer
  with the standard middleware), in the test's event loop;
- the portal: the simulator in this process (`InProcessServer`) on a SQLite file, looked at
  through its `/_sim/` endpoints, as an operator would.

What the service did is read from the bus's Prometheus metrics, as an operator would too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pika
from prometheus_client import REGISTRY

from bus.broker import Connection
from bus.declarations import apply_topology
from bus.message import Message
from bus.portal_sim import InProcessServer, Options
from bus.publisher import EventPublisher, Publisher
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey
from bus.sync.runner import run_sync
from bus.topology import DEAD_LETTER_QUEUE, SYNC_QUEUE, retry_queue_name, topology
from connectors.sample import lifecycles
from schemas import Dossier, Event, encode_event
from schemas.wire import to_dossier_item, to_progress_item

AGENCY = "000.00.01.H29"
UNIT = "H29"
CONNECTOR = "sample-h29"  # the sample lifecycles' default connector for H29
KEY_ID = "sample-h29-test"
SECRET = b"the sample connector's test secret"
START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
DOSSIER_SERVICE = "DongBoHoSoMC"

Lifecycles = list[list[Event]]


def sample(count: int, seed: int) -> Lifecycles:
    return lifecycles(AGENCY, count, seed=seed, start=START)


def finals(dossiers: Lifecycles) -> dict[str, Dossier]:
    """Each dossier as its last event left it: what the portal must end up holding."""
    return {str(events[-1].dossier_code): events[-1].payload.dossier for events in dossiers}


def shuffled_twice(dossiers: Lifecycles, seed: int) -> list[Event]:
    """Every event twice (the same event id), all in a random order."""
    events = [event for events in dossiers for event in events] * 2
    random.Random(seed).shuffle(events)
    return events


def sync_settings(vhost: str, portal_url: str, tmp_path: Path, **changes: Any) -> Settings:
    """Settings for the sync service of a test: its vhost, the simulator, a SQLite state
    store and a key file in `tmp_path`. Retries are short (0.2, 0.5, 1 s) and plenty (20
    attempts), so that no transient failure can exhaust them in a test; the breaker probes
    again after 1 s, then every 2 s."""
    keys = tmp_path / "keys.json"
    if not keys.exists():
        KeyRing([VerifyKey(KEY_ID, CONNECTOR, "hmac-sha256", SECRET)]).save(keys)
    values: dict[str, Any] = {
        "amqp_url": vhost,
        "portal_url": portal_url,
        "state_url": f"sqlite:///{tmp_path / 'state.sqlite3'}",
        "verify_keys_file": keys,
        "retry_delays": (0.2, 0.5, 1.0),
        "max_attempts": 20,
        "reconnect_max_delay": 0.5,
        "sync_rate": 500.0,
        "sync_min_rate": 20.0,
        "breaker_cooldown": 1.0,
        "breaker_max_cooldown": 2.0,
    }
    return Settings(**{**values, **changes})


# ---- the broker side ------------------------------------------------------------------------


@dataclass
class Bus:
    """Publishers on a connection to the test's vhost, which holds the topology."""

    publisher: Publisher  # for reconcile's re-queued messages
    events: EventPublisher  # signed as the sample connector

    async def publish(self, events: Iterable[Event]) -> None:
        """Publish signed events, pipelined, and wait until the broker confirmed them all."""
        confirms = [await self.events.send(event) for event in events]
        await asyncio.gather(*confirms)


@contextlib.asynccontextmanager
async def bus_in(settings: Settings) -> AsyncIterator[Bus]:
    connection = Connection(settings.amqp_url.get_secret_value(), name="test-connector")
    publisher = Publisher(connection)
    await connection.start(timeout=10)
    try:
        _, mismatches = await apply_topology(connection, topology(settings))
        assert not mismatches, mismatches
        signer = Signer(KEY_ID, "hmac-sha256", SECRET)
        yield Bus(publisher, EventPublisher(publisher, signer))
    finally:
        await connection.close()


@dataclass
class Service:
    """The sync service running in the background (see `sync_service`)."""

    task: asyncio.Task[None]

    async def settled(self, before: Counter[str], count: int, timeout: float = 120) -> Counter[str]:
        """Wait until `count` messages more than at `before` have ended (applied, stale,
        superseded, duplicate, dead-lettered), not counting the trips through a retry tier
        that came first: every message published since has run its course. The outcomes
        since `before`."""
        deadline = time.monotonic() + timeout
        while True:
            done = outcomes() - before
            if sum(n for outcome, n in done.items() if outcome not in UNSETTLED) >= count:
                return done
            if self.task.done():
                self.task.result()
                raise AssertionError("the sync service stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} messages not settled in {timeout} s: {dict(done)}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def sync_service(settings: Settings) -> AsyncIterator[Service]:
    """The sync service as `bus sync run` runs it, in the background for the block.

    Not `run_sync(until_idle=...)`: the consumer measures quiet from the last delivery, so
    it can stop while a message whose handling took longer than that has just gone to a
    retry tier. `Service.settled` waits for exactly the messages a test published."""
    task = asyncio.create_task(run_sync(settings), name="bus-sync")
    try:
        yield Service(task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)


def depth_now(url: str, queue: str) -> int:
    """Messages ready in `queue`, as the broker counts them (a plain pika client)."""
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        frame = connection.channel().queue_declare(queue, passive=True)
        return int(frame.method.message_count)


async def depth(url: str, queue: str) -> int:
    return await asyncio.to_thread(depth_now, url, queue)


async def depths(url: str, settings: Settings) -> dict[str, int]:
    """Messages ready in portal.sync, each retry tier and the dead-letter queue."""
    tiers = [retry_queue_name(tier) for tier in range(1, len(settings.retry_delays) + 1)]
    return {queue: await depth(url, queue) for queue in [SYNC_QUEUE, *tiers, DEAD_LETTER_QUEUE]}


@dataclass
class DeadLetter:
    message_id: str | None
    headers: dict[str, Any]
    body: bytes


def take_dead_letters(url: str) -> list[DeadLetter]:
    """Take (get and ack) every message ready in portal.sync.dlq, oldest first."""
    taken: list[DeadLetter] = []
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(DEAD_LETTER_QUEUE, auto_ack=True)
            if method is None:
                return taken
            taken.append(DeadLetter(properties.message_id, properties.headers or {}, body))


# ---- what the service did, from its metrics -------------------------------------------------

# Outcomes after which a message comes back (from a retry tier, or requeued): every other
# outcome is where a message ends.
UNSETTLED = frozenset({"retried", "failed"})


def outcomes(unit: str = UNIT) -> Counter[str]:
    """Messages of portal.sync, or of its shards, finished so far for `unit`, by outcome
    (bus_messages_total)."""
    found: Counter[str] = Counter()
    for family in REGISTRY.collect():
        if family.name != "bus_messages":
            continue
        for s in family.samples:
            queue = str(s.labels.get("queue"))
            sync = queue == SYNC_QUEUE or queue.startswith(f"{SYNC_QUEUE}.shard.")
            if s.name.endswith("_total") and sync and s.labels.get("unit") == unit:
                found[s.labels["outcome"]] += int(s.value)
    return found


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ---- the portal side ------------------------------------------------------------------------


class Portal:
    """The simulator, seen through its operator endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def faults(self, **changes: Any) -> None:
        self.http.put("/_sim/faults", json=changes).raise_for_status()

    def reset(self) -> None:
        self.http.post("/_sim/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get("/_sim/stats").json()
        return stats

    def records(self, unit: str = UNIT) -> dict[str, dict[str, Any]]:
        """Every dossier record of `unit`: item and progress as sent, by dossier code."""
        found: dict[str, dict[str, Any]] = {}
        after = ""
        while True:
            params: dict[str, str | int] = {"unit": unit, "limit": 10_000, "after": after}
            page = self.http.get("/_sim/dossiers", params=params).json()
            found.update((record["code"], record) for record in page["dossiers"])
            if page["next"] is None:
                return found
            after = page["next"]

    def history(self, code: str) -> list[dict[str, Any]]:
        """The dossier items applied to `code`, in the order the portal applied them."""
        rows = self.http.get(f"/_sim/dossiers/{code}").raise_for_status().json()["history"]
        return [row["item"] for row in rows if row["service"] == DOSSIER_SERVICE]


@contextlib.contextmanager
def portal_sim(tmp_path: Path) -> Iterator[Portal]:
    with InProcessServer(Options(db=tmp_path / "portal.sqlite3")) as url:
        portal = Portal(url)
        try:
            yield portal
        finally:
            portal.http.close()


def differences(portal: Portal, expected: Mapping[str, Dossier], unit: str = UNIT) -> list[str]:
    """How what the portal holds of `unit` differs from `expected` (empty when it holds
    exactly that): each dossier's record is its item, and its progress steps are its steps,
    as the bus writes them."""
    held = portal.records(unit)
    problems = [f"{code}: missing on the portal" for code in sorted(expected.keys() - held)]
    problems += [f"{code}: not expected on the portal" for code in sorted(held.keys() - expected)]
    for code in sorted(expected.keys() & held.keys()):
        dossier, record = expected[code], held[code]
        if record["item"] != to_dossier_item(dossier):
            problems.append(f"{code}: dossier item differs (status {record['status']})")
        steps = [to_progress_item(code, step) for step in dossier.progress]
        if record["progress"] != steps:
            held_steps = len(record["progress"])
            problems.append(f"{code}: {held_steps} progress steps where {len(steps)} expected")
    return problems


def _key(item: object) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


@dataclass
class History:
    """What the portal's history says about the order in which dossier items arrived."""

    items: int  # dossier items the portal applied, in all
    regressions: list[str]  # an item older than one applied before it: a stale send
    unknown: list[str]  # an item equal to no snapshot of its dossier


def history(portal: Portal, dossiers: Lifecycles) -> History:
    """Map every dossier item the portal applied back to the seq of the snapshot it equals,
    and check that the seqs never go down. Snapshots that differ only in their progress have
    equal items, so an item may stand for a run of seqs: the earliest one not below the last
    is taken."""
    result = History(0, [], [])
    for events in dossiers:
        code = str(events[0].dossier_code)
        seqs: dict[bytes, list[int]] = {}
        for event in events:
            seqs.setdefault(_key(to_dossier_item(event.payload.dossier)), []).append(event.seq)
        last = 0
        for item in portal.history(code):
            result.items += 1
            candidates = seqs.get(_key(item))
            if candidates is None:
                result.unknown.append(code)
                continue
            later = [seq for seq in candidates if seq >= last]
            if not later:
                result.regressions.append(f"{code}: seq {max(candidates)} after seq {last}")
                continue
            last = later[0]
    return result


def first(items: Sequence[str], count: int = 5) -> list[str]:
    return list(itertools.islice(items, count))


def delivered(event: Event, generation: int = 1) -> Message:
    """The event as the sync service's consumer hands it over, fresh from dossier.events."""
    return Message(
        body=encode_event(event),
        exchange="dossier.events",
        routing_key=f"{event.unit}.{event.event_type}",
        headers={},
        redelivered=False,
        delivery_tag=event.seq,
        message_id=str(event.event_id),
        event=event,
        generation=generation,
    )
