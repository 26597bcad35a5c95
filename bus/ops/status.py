"""What `bus status` shows: the queues, and each unit's dead letters and connectors.

Queues come from the broker's management API (messages, ready, unacked, consumers, publish
and deliver rates), in the topology's order. Units come from two places: the dead letters
waiting in the `OpsStore` (after a collect, so they are current) and the latest heartbeat of
each connector in the `connector.heartbeats` stream (`connectors/heartbeat.py`): how long
ago it was heard from, its outbox (events the broker has not taken yet) and its rejects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bus.broker import Connection
from bus.message import Message
from bus.ops.stream import read_stream
from bus.settings import Settings
from bus.topology import HEARTBEAT_STREAM, topology


@dataclass(frozen=True)
class QueueStatus:
    name: str
    kind: str  # quorum, classic, stream
    messages: int
    ready: int
    unacked: int
    consumers: int
    publish_rate: float  # messages per second, as the broker last measured
    deliver_rate: float


@dataclass(frozen=True)
class ConnectorStatus:
    connector: str
    unit: str
    kind: str
    heard_at: datetime  # its latest heartbeat
    outbox: int
    rejects: int
    published: int

    def age(self, now: datetime) -> float:
        return (now - self.heard_at).total_seconds()


@dataclass(frozen=True)
class UnitStatus:
    unit: str
    dead_letters: dict[str, int] = field(default_factory=dict)  # waiting, by reason
    connectors: tuple[ConnectorStatus, ...] = ()

    @property
    def waiting(self) -> int:
        return sum(self.dead_letters.values())


def queue_status(queues: Iterable[Mapping[str, Any]], settings: Settings) -> list[QueueStatus]:
    """The topology's queues as the management API (`Management.queues`) reports them; a
    queue the broker does not have is left out."""
    by_name = {str(queue["name"]): queue for queue in queues}
    found = []
    for queue in topology(settings).queues:
        raw = by_name.get(queue.name)
        if raw is None:
            continue
        stats = raw.get("message_stats") or {}
        found.append(
            QueueStatus(
                name=queue.name,
                kind=str(raw.get("type", queue.kind)),
                messages=int(raw.get("messages") or 0),
                ready=int(raw.get("messages_ready") or 0),
                unacked=int(raw.get("messages_unacknowledged") or 0),
                consumers=int(raw.get("consumers") or 0),
                publish_rate=_rate(stats, "publish"),
                deliver_rate=_rate(stats, "deliver_get"),
            )
        )
    return found


async def latest_heartbeats(
    connection: Connection, *, within: timedelta = timedelta(hours=1)
) -> dict[str, ConnectorStatus]:
    """Each connector's latest heartbeat of the last `within`, by connector name."""
    latest: dict[str, ConnectorStatus] = {}

    async def keep(message: Message, _end: int) -> None:
        beat = heartbeat_of(message)
        if beat is not None:
            known = latest.get(beat.connector)
            if known is None or beat.heard_at >= known.heard_at:
                latest[beat.connector] = beat

    await read_stream(connection, HEARTBEAT_STREAM, datetime.now(UTC) - within, keep, idle=1.0)
    return latest


def heartbeat_of(message: Message) -> ConnectorStatus | None:
    """A heartbeat's body, or None for a message that is not one (it is skipped)."""
    try:
        body = orjson.loads(message.body)
        return ConnectorStatus(
            connector=str(body["connector"]),
            unit=str(body["unit"]),
            kind=str(body.get("kind", "")),
            heard_at=datetime.fromisoformat(body["at"]).astimezone(UTC),
            outbox=int(body.get("outbox", 0)),
            rejects=int(body.get("rejects", 0)),
            published=int(body.get("published", 0)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def unit_status(
    counts: Mapping[tuple[str, str], int],
    heartbeats: Iterable[ConnectorStatus],
    units: frozenset[str] | None = None,
) -> list[UnitStatus]:
    """One row per unit that has dead letters waiting or a connector heard from; `units`
    limits them to an operator's."""
    dead: dict[str, dict[str, int]] = {}
    for (unit, reason), count in counts.items():
        dead.setdefault(unit, {})[reason] = count
    connectors: dict[str, list[ConnectorStatus]] = {}
    for beat in heartbeats:
        connectors.setdefault(beat.unit, []).append(beat)
    names = sorted(dead.keys() | connectors.keys())
    return [
        UnitStatus(
            unit,
            dead.get(unit, {}),
            tuple(sorted(connectors.get(unit, []), key=lambda c: c.connector)),
        )
        for unit in names
        if units is None or unit in units
    ]


def _rate(stats: Mapping[str, Any], name: str) -> float:
    details = stats.get(f"{name}_details") or {}
    return float(details.get("rate") or 0.0)
