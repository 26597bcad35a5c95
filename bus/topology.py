"""Names and arguments of every exchange, queue and binding, as pure functions of settings.

With one sync queue (BUS_SYNC_SHARDS=1, the default):

    dossier.events (topic) ──<unit>.<event_type>──▶ portal.sync (quorum)
         │                                            ├─ fails ─▶ portal.sync.retry.<n> (TTL) ─┐
         │                                            │      back to portal.sync ◀────────────┘
         │                                            └─ gives up ─▶ portal.sync.dlq
         ├───────────────────────────────────────────▶ dossier.audit (stream)
         └──<unit>.heartbeat─────────────────────────▶ connector.heartbeats (stream)

With S shards (BUS_SYNC_SHARDS=S > 1), portal.sync gives way to an exchange that hashes the
x-dossier-code header, so that every event of a dossier lands in the same shard, and each
shard has a single active consumer, so that they are handled in order:

    dossier.events ──<unit>.<event_type>──▶ portal.sync.shards (x-consistent-hash)
                                               ├─▶ portal.sync.shard.0 (quorum, single active)
                                               ├─▶ …
                                               └─▶ portal.sync.shard.<S-1>
    a shard ─ fails ─▶ portal.sync.shards.retry.<n> (TTL) ─▶ back to portal.sync.shards
            └ gives up ─▶ portal.sync.dlq

The retry tiers of the two layouts have names of their own because their dead-letter
targets differ, and RabbitMQ cannot change a queue's arguments: `bus topology apply` moves
what one layout holds into the other (bus/migration.py).

Declaring is the broker adapter's job; this module only says what should exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.headers import DOSSIER_CODE
from bus.settings import Settings
from schemas import EVENT_TYPES

EVENTS_EXCHANGE = "dossier.events"
SYNC_QUEUE = "portal.sync"
SHARDS_EXCHANGE = "portal.sync.shards"
HASH_HEADER = DOSSIER_CODE  # what the shards exchange hashes: a dossier stays on one shard
DEAD_LETTER_QUEUE = "portal.sync.dlq"
AUDIT_STREAM = "dossier.audit"
HEARTBEAT_STREAM = "connector.heartbeats"
HEARTBEAT = "heartbeat"  # the routing key's second part, and the message type's last


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str = "topic"
    arguments: dict[str, Any] = field(default_factory=dict)
    bindings: tuple[tuple[str, str], ...] = ()  # (source exchange, routing key pattern)


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    bindings: tuple[tuple[str, str], ...] = ()  # (exchange, routing key pattern)

    @property
    def kind(self) -> str:
        return str(self.arguments.get("x-queue-type", "classic"))


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]


def routing_key(unit: str, event_type: str) -> str:
    return f"{unit}.{event_type}"


def sharded(settings: Settings) -> bool:
    return settings.sync_shards > 1


def event_bindings() -> tuple[tuple[str, str], ...]:
    # One binding per known event type rather than "#": a key no one expects (a typo, an
    # unknown type) is unroutable, so the publisher hears about it instead of the audit
    # stream swallowing it.
    return tuple((EVENTS_EXCHANGE, routing_key("*", name)) for name in EVENT_TYPES)


def retry_queue_name(tier: int, shards: int = 1) -> str:
    """The retry tier's queue; its name says where it sends messages back to."""
    return f"{SHARDS_EXCHANGE if shards > 1 else SYNC_QUEUE}.retry.{tier}"


def shard_queue_name(shard: int) -> str:
    return f"{SYNC_QUEUE}.shard.{shard}"


def is_sync_queue(name: str) -> bool:
    """Whether `name` is a queue the sync service works from: portal.sync, or a shard of it
    (what metrics of the flow, labelled by queue, add up)."""
    if name == SYNC_QUEUE:
        return True
    prefix, _, number = name.rpartition(".")
    return prefix == f"{SYNC_QUEUE}.shard" and number.isdigit()


def sync_route(settings: Settings) -> tuple[str, str]:
    """(exchange, routing key) of a message for the sync service, from the bus itself
    (reconcile, dead-letter replay, history resend): straight into portal.sync, or into
    the shards exchange, whose hash of the x-dossier-code header picks the shard."""
    return (SHARDS_EXCHANGE, "") if sharded(settings) else ("", SYNC_QUEUE)


def own_shards(settings: Settings) -> tuple[int, ...]:
    """The shards this sync worker should be the active consumer of: s % W == index."""
    workers, index = settings.sync_workers, settings.sync_worker_index
    return tuple(s for s in range(settings.sync_shards) if s % workers == index)


def sync_queues(settings: Settings) -> tuple[str, ...]:
    """The queues a sync worker consumes, in the order it subscribes: portal.sync alone, or
    its own shards first, then every other shard, where it stands by (single active
    consumer gives a queue to its first consumer, and to the next when that one goes)."""
    if not sharded(settings):
        return (SYNC_QUEUE,)
    own = own_shards(settings)
    others = tuple(s for s in range(settings.sync_shards) if s not in own)
    return tuple(shard_queue_name(s) for s in own + others)


def _safe_dead_lettering(target_queue: str) -> dict[str, Any]:
    # at-least-once: the broker keeps a message until the queue it moves to has it.
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": target_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def _work_queue(settings: Settings) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.delivery_limit,
        **_safe_dead_lettering(DEAD_LETTER_QUEUE),
    }


def sync_queue(settings: Settings) -> Queue:
    return Queue(SYNC_QUEUE, _work_queue(settings), event_bindings())


def shards_exchange() -> Exchange:
    return Exchange(
        SHARDS_EXCHANGE, "x-consistent-hash", {"hash-header": HASH_HEADER}, event_bindings()
    )


def shard_queues(settings: Settings) -> tuple[Queue, ...]:
    # Equal weights ("1"): each shard takes an equal part of the hash ring.
    return tuple(
        Queue(
            shard_queue_name(shard),
            {**_work_queue(settings), "x-single-active-consumer": True},
            ((SHARDS_EXCHANGE, "1"),),
        )
        for shard in range(settings.sync_shards)
    )


def retry_queues(settings: Settings) -> tuple[Queue, ...]:
    if sharded(settings):
        # The hash header sends a returning message to its dossier's shard.
        back = {
            "x-dead-letter-exchange": SHARDS_EXCHANGE,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    else:
        back = _safe_dead_lettering(SYNC_QUEUE)
    return tuple(
        Queue(
            retry_queue_name(tier, settings.sync_shards),
            {"x-queue-type": "quorum", "x-message-ttl": round(delay * 1000), **back},
        )
        for tier, delay in enumerate(settings.retry_delays, start=1)
    )


def dead_letter_queue() -> Queue:
    return Queue(DEAD_LETTER_QUEUE, {"x-queue-type": "quorum"})


def audit_stream(settings: Settings) -> Queue:
    return Queue(
        AUDIT_STREAM,
        {
            "x-queue-type": "stream",
            "x-max-age": settings.audit_max_age,
            "x-max-length-bytes": settings.audit_max_bytes,
        },
        event_bindings(),
    )


def heartbeat_stream() -> Queue:
    # A stream, not a queue: the console, `bus status` and a Prometheus exporter may all
    # read the latest heartbeats without taking them from one another.
    return Queue(
        HEARTBEAT_STREAM,
        {"x-queue-type": "stream", "x-max-age": "7D", "x-max-length-bytes": 1024**3},
        ((EVENTS_EXCHANGE, routing_key("*", HEARTBEAT)),),
    )


def topology(settings: Settings) -> Topology:
    if sharded(settings):
        exchanges: tuple[Exchange, ...] = (Exchange(EVENTS_EXCHANGE), shards_exchange())
        work: tuple[Queue, ...] = shard_queues(settings)
    else:
        exchanges, work = (Exchange(EVENTS_EXCHANGE),), (sync_queue(settings),)
    return Topology(
        exchanges=exchanges,
        queues=(
            *work,
            *retry_queues(settings),
            dead_letter_queue(),
            audit_stream(settings),
            heartbeat_stream(),
        ),
    )


def retry_tier_for(attempt: int, settings: Settings) -> str | None:
    """The retry queue after failed attempt number `attempt` (1-based), None when it was the
    last allowed one."""
    if attempt >= settings.max_attempts:
        return None
    tier = min(attempt, len(settings.retry_delays))
    return retry_queue_name(tier, settings.sync_shards)
