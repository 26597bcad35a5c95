"""Dead letters made for real, for the operator tools' tests (fixtures in conftest.py).

The sync service runs as `bus sync run` runs it, against the portal simulator, in the test's
scratch vhost; then three kinds of events are published through dossier.events:

- H29 events while the portal is down: two attempts (BUS_MAX_ATTEMPTS=2), then the
  dead-letter queue, reason `portal_unavailable`; once the portal is back, a replay applies;
- G01 events signed with H29's key: dead-lettered at once, reason `signature`;
- an H29 event the portal refuses (due before received): reason `portal_rejected`, and again
  every time it is replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from bus.broker import Connection
from bus.ops import DeadLetters, OpsStore
from bus.settings import Settings
from bus.topology import DEAD_LETTER_QUEUE
from connectors.sample import lifecycles
from schemas import Event
from sync.sync_support import (
    START,
    Bus,
    Portal,
    bus_in,
    depth,
    sample,
    sync_service,
)

G01_AGENCY = "000.00.01.G01"


@dataclass
class Made:
    """The events that were dead-lettered, by why."""

    unavailable: list[Event]  # H29, portal down: a replay applies them once it is up
    unsigned: list[Event]  # G01, signed with another connector's key
    rejected: Event  # H29, refused by the portal every time

    @property
    def count(self) -> int:
        return len(self.unavailable) + len(self.unsigned) + 1


@dataclass
class Ops:
    settings: Settings
    portal: Portal
    bus: Bus
    connection: Connection
    store: OpsStore
    dead_letters: DeadLetters

    async def wait_for_dead_letters(self, count: int, timeout: float = 60) -> None:
        """Until portal.sync.dlq holds `count` messages."""
        url = self.settings.amqp_url.get_secret_value()
        deadline = time.monotonic() + timeout
        while (held := await depth(url, DEAD_LETTER_QUEUE)) < count:
            assert time.monotonic() < deadline, f"{held} of {count} dead letters"
            await asyncio.sleep(0.1)

    async def make_dead_letters(self) -> Made:
        h29 = [life[-1] for life in sample(6, seed=5)]
        rejected = next(e for e in h29[3:] if e.payload.dossier.received_at is not None)
        g01 = [life[-1] for life in lifecycles(G01_AGENCY, 2, seed=6, start=START)]
        made = Made(h29[:3], g01, wrong_due_date(rejected))
        self.portal.faults(down=True)
        await self.bus.publish([*made.unavailable, *made.unsigned])
        await self.wait_for_dead_letters(len(made.unavailable) + len(made.unsigned))
        self.portal.faults(down=False)
        await self.bus.publish([made.rejected])
        await self.wait_for_dead_letters(made.count)
        return made


@contextlib.asynccontextmanager
async def operating(settings: Settings, portal: Portal) -> AsyncIterator[Ops]:
    """The bus with its topology, the sync service running, and the operator tools."""
    async with bus_in(settings) as bus, sync_service(settings):
        connection = Connection(settings.amqp_url.get_secret_value(), name="test-ops")
        await connection.start(timeout=10)
        store = OpsStore(settings.ops_url.get_secret_value())
        try:
            yield Ops(
                settings, portal, bus, connection, store, DeadLetters(store, connection, settings)
            )
        finally:
            await connection.close()
            store.close()


def wrong_due_date(event: Event) -> Event:
    """The event with its dossier due a day before it was received: the portal refuses it."""
    dossier = event.payload.dossier
    assert dossier.received_at is not None
    wrong = dossier.model_copy(update={"due_at": dossier.received_at - timedelta(days=1)})
    payload = event.payload.model_copy(update={"dossier": wrong})
    return event.model_copy(update={"payload": payload})
