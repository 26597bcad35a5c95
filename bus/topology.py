"""Names and arguments of every exchange, queue and binding, as pure functions of settings.

    dossier.events (topic) ──<unit>.<event_type>──▶ portal.sync (quorum)
         │                                            ├─ fails ─▶ portal.sync.retry.<n> (TTL) ─┐
         │                                            │      back to portal.sync ◀────────────┘
         │                                            └─ gives up ─▶ portal.sync.dlq
         ├───────────────────────────────────────────▶ dossier.audit (stream)
         └──<unit>.heartbeat─────────────────────────▶ connector.heartbeats (stream)

Declaring is the broker adapter's job; this module only says what should exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.settings import Settings
from schemas import EVENT_TYPES

EVENTS_EXCHANGE = "dossier.events"
SYNC_QUEUE = "portal.sync"
DEAD_LETTER_QUEUE = "portal.sync.dlq"
AUDIT_STREAM = "dossier.audit"
HEARTBEAT_STREAM = "connector.heartbeats"
HEARTBEAT = "heartbeat"  # the routing key's second part, and the message type's last


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str = "topic"


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


def event_bindings() -> tuple[tuple[str, str], ...]:
    # One binding per known event type rather than "#": a key no one expects (a typo, an
    # unknown type) is unroutable, so the publisher hears about it instead of the audit
    # stream swallowing it.
    return tuple((EVENTS_EXCHANGE, routing_key("*", name)) for name in EVENT_TYPES)


def retry_queue_name(tier: int) -> str:
    return f"{SYNC_QUEUE}.retry.{tier}"


def _safe_dead_lettering(target_queue: str) -> dict[str, Any]:
    # at-least-once: the broker keeps a message until the queue it moves to has it.
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": target_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def sync_queue(settings: Settings) -> Queue:
    return Queue(
        SYNC_QUEUE,
        {
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.delivery_limit,
            **_safe_dead_lettering(DEAD_LETTER_QUEUE),
        },
        event_bindings(),
    )


def retry_queues(settings: Settings) -> tuple[Queue, ...]:
    return tuple(
        Queue(
            retry_queue_name(tier),
            {
                "x-queue-type": "quorum",
                "x-message-ttl": round(delay * 1000),
                **_safe_dead_lettering(SYNC_QUEUE),
            },
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
    return Topology(
        exchanges=(Exchange(EVENTS_EXCHANGE),),
        queues=(
            sync_queue(settings),
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
    return retry_queue_name(tier)
