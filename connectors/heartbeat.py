"""Heartbeats: a connector says it is alive, and how its outbox and rejects stand.

Sent every `heartbeat_interval` seconds to `dossier.events` with the routing key
`<unit>.heartbeat`, so that operators (`connector.heartbeats` stream) see a connector that
went silent, or whose outbox grows because the broker refuses it, before a citizen does.
The routing key is one of the connector's own unit, the only ones its broker user may write;
the publisher stamps that user as `user_id`, as on every event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from bus.message import Outgoing
from bus.topology import EVENTS_EXCHANGE, HEARTBEAT, routing_key

MESSAGE_TYPE = f"connector.{HEARTBEAT}"


@dataclass(frozen=True)
class Health:
    connector: str
    agency: str
    unit: str
    kind: str
    outbox: int  # events waiting for the broker
    rejects: int  # records refused so far
    published: int  # events confirmed since the connector started
    cursor: str | None
    started_at: datetime


def heartbeat(health: Health) -> Outgoing:
    now = datetime.now(UTC)
    body = orjson.dumps(
        {
            "connector": health.connector,
            "agency": health.agency,
            "unit": health.unit,
            "kind": health.kind,
            "at": now.isoformat(),
            "started_at": health.started_at.isoformat(),
            "outbox": health.outbox,
            "rejects": health.rejects,
            "published": health.published,
            "cursor": health.cursor,
        }
    )
    return Outgoing(
        exchange=EVENTS_EXCHANGE,
        routing_key=routing_key(health.unit, HEARTBEAT),
        body=body,
        type=MESSAGE_TYPE,
        app_id=health.connector,
        timestamp=int(now.timestamp()),
    )
