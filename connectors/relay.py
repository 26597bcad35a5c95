"""Publish what the outbox holds, in order, and forget each row once the broker confirms it.

Rows go out through the bus publisher (pipelined confirms, re-publication after a
reconnect), signed with the connector's key and stamped with its broker user (`user_id`,
which the broker checks), without decoding them again: they were valid when stored. While
the broker is away, `send` waits and rows stay in the outbox; the relay goes on by itself
when the connection is back.
"""

from __future__ import annotations

import asyncio
from typing import Final

import structlog

from bus.errors import PublishError
from bus.message import Outgoing
from bus.metrics import CONNECTOR_OUTBOX, CONNECTOR_PUBLISHED, labelled
from bus.publisher import Publisher, stored_event_message
from bus.signing import Signer
from connectors.failpoints import failpoint
from connectors.outbox import Outbox, Pending

log = structlog.get_logger(__name__)

CHUNK: Final = 1000  # rows read, published and deleted together
RETRY_DELAY: Final = 1.0


class Relay:
    def __init__(
        self,
        outbox: Outbox,
        publisher: Publisher,
        signer: Signer | None,
        connector: str,
        unit: str,
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._signer = signer
        self._connector = connector
        self._wake = asyncio.Event()
        self.published = 0
        self._published_metric = labelled(CONNECTOR_PUBLISHED, unit, connector)
        self._outbox_metric = labelled(CONNECTOR_OUTBOX, unit, connector)

    def wake(self) -> None:
        """New rows are in the outbox."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled."""
        while True:
            self._wake.clear()
            if not await self.relay_once():
                await self._wake.wait()

    async def relay_once(self) -> int:
        """Publish one chunk and delete it once confirmed; the number of rows relayed."""
        rows = self._outbox.pending(CHUNK)
        if not rows:
            return 0
        try:
            confirms = [await self._publisher.send(self._message(row)) for row in rows]
            await asyncio.gather(*confirms)
        except PublishError as error:
            # Unroutable or refused: the topology is missing or wrong. Rows stay; an operator
            # sees this line until `bus topology apply` fixes it.
            log.error("outbox rows not accepted by the broker", error=str(error), rows=len(rows))
            await asyncio.sleep(RETRY_DELAY)
            return 0
        failpoint("after-publish")
        self._outbox.delete_through(rows[-1].id)
        self.published += len(rows)
        self._published_metric.inc(len(rows))
        self._outbox_metric.dec(len(rows))
        return len(rows)

    def _message(self, row: Pending) -> Outgoing:
        return stored_event_message(
            row.body,
            event_id=row.event_id,
            event_type=row.event_type,
            connector=self._connector,
            dossier_code=row.dossier_code,
            seq=row.seq,
            timestamp=row.occurred_at,
            signer=self._signer,
            user_id=self._publisher.user,
        )
