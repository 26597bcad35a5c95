"""The queues and connectors on the overview: queue depths and consumers from the broker's
management API, and each connector's latest heartbeat (when, outbox, rejects), read with
`bus.ops.status` and cut to the operator's units.

Reading the heartbeat stream takes a second or so, and every open overview asks every few
seconds: one reading serves everyone for `FRESH` seconds, and one at a time is made.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from bus.broker import Connection
from bus.management import Management, ManagementError, management_url_for, vhost_of
from bus.ops import Operator
from bus.ops.status import ConnectorStatus, QueueStatus, latest_heartbeats, queue_status
from bus.settings import Settings

log = structlog.get_logger(__name__)

FRESH: Final = 5.0  # seconds a reading is shown before the next one is made
SILENT_AFTER: Final = timedelta(minutes=2)  # a connector beats every few seconds


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic
    queues: list[QueueStatus]
    connectors: list[ConnectorStatus]
    problems: list[str]


class StatusBoard:
    def __init__(self, settings: Settings, connection: Connection) -> None:
        self.settings = settings
        self.connection = connection
        amqp_url = settings.amqp_url.get_secret_value()
        self._management_url = management_url_for(amqp_url)
        self._vhost = vhost_of(amqp_url)
        self._reading: Reading | None = None
        self._lock = asyncio.Lock()

    async def read(self, operator: Operator) -> dict[str, Any]:
        """Queues, and the connectors of the operator's units, as the overview shows them."""
        reading = await self._current()
        now = datetime.now(UTC)
        connectors = [
            {
                "connector": c.connector,
                "unit": c.unit,
                "kind": c.kind,
                "last_heartbeat": c.heard_at.timestamp(),
                "outbox": c.outbox,
                "rejects": c.rejects,
                "healthy": c.age(now) < SILENT_AFTER.total_seconds(),
            }
            for c in reading.connectors
            if operator.units is None or c.unit in operator.units
        ]
        queues = [
            {"name": q.name, "ready": q.ready, "unacked": q.unacked, "consumers": q.consumers}
            for q in reading.queues
        ]
        return {"queues": queues, "connectors": connectors, "problems": reading.problems}

    async def _current(self) -> Reading:
        async with self._lock:
            if self._reading is None or time.monotonic() - self._reading.at > FRESH:
                self._reading = await self._read()
            return self._reading

    async def _read(self) -> Reading:
        problems: list[str] = []
        queues: list[QueueStatus] = []
        connectors: list[ConnectorStatus] = []
        try:
            raw = await asyncio.to_thread(self._queues)
            queues = queue_status(raw, self.settings)
        except ManagementError as error:
            problems.append(str(error))
        if self.connection.is_open:
            try:
                beats = await latest_heartbeats(self.connection)
                connectors = sorted(beats.values(), key=lambda c: (c.unit, c.connector))
            except Exception as error:  # shown on the page; the next reading tries again
                log.warning("heartbeats unreadable", error=str(error))
                problems.append(f"heartbeats unreadable: {error}")
        else:
            problems.append("the console is not connected to the broker")
        return Reading(time.monotonic(), queues, connectors, problems)

    def _queues(self) -> list[dict[str, Any]]:
        with Management(self._management_url, timeout=5) as api:
            return api.queues(self._vhost)
