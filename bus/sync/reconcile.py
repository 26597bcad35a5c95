"""Reconciliation: prove the portal holds what the bus applied, and repair what it does not.

For every dossier of a unit the state store says was applied (since a moment, or ever), the
portal is asked for its copy (TraCuuHoSo). A dossier the portal lacks, or holds differently
from the snapshot the bus applied, is re-queued: the applied message, signature and all, goes
back to the sync service (portal.sync, or the shards exchange, `sync_route`), with its
x-dossier-code header, which picks its shard, and a resync mark that lets the version guard
apply it once more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from bus import headers
from bus.errors import PortalUnavailable
from bus.message import Outgoing
from bus.publisher import Publisher
from bus.sync.portal import PortalClient
from bus.sync.store import AppliedRow, StateStore
from bus.topology import EVENTS_EXCHANGE, SYNC_QUEUE, routing_key
from schemas import ContractError, Dossier, decode_event
from schemas.wire import from_wire

log = structlog.get_logger(__name__)

PROGRESS = "CapNhatTienDoHoSoMC"


@dataclass
class Summary:
    checked: int = 0
    in_step: int = 0
    missing: int = 0
    different: int = 0
    unreadable: int = 0  # the portal could not be asked: left for the next run
    requeued: int = 0

    def __str__(self) -> str:
        return (
            f"{self.checked} checked: {self.in_step} in step, {self.missing} missing on the "
            f"portal, {self.different} different, {self.unreadable} not checked "
            f"(portal unavailable); {self.requeued} re-queued"
        )


async def reconcile(
    store: StateStore,
    portal: PortalClient,
    publisher: Publisher,
    unit: str,
    *,
    route: tuple[str, str] = ("", SYNC_QUEUE),
    since: datetime | None = None,
    concurrency: int = 8,
    progress: Callable[[Summary], None] = lambda _summary: None,
) -> Summary:
    summary = Summary()
    slots = asyncio.Semaphore(concurrency)
    checks: set[asyncio.Task[None]] = set()

    async def check(row: AppliedRow) -> None:
        async with slots:
            verdict = await _compare(portal, row)
        if verdict == "unreadable":
            summary.unreadable += 1
        elif verdict == "in_step":
            summary.in_step += 1
        else:
            setattr(summary, verdict, getattr(summary, verdict) + 1)
            await publisher.publish(_requeued(row, route))
            summary.requeued += 1
            log.info("re-queued for the portal", dossier_code=row.dossier_code, why=verdict)
        summary.checked += 1
        progress(summary)

    async for row in store.applied(unit, since):
        if len(checks) >= 4 * concurrency:  # a bounded read-ahead, whatever the unit's size
            done, checks = await asyncio.wait(checks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failed check fails the run, as one among the last ones does
        checks.add(asyncio.create_task(check(row)))
    if checks:
        await asyncio.gather(*checks)
    return summary


async def _compare(portal: PortalClient, row: AppliedRow) -> str:
    applied = decode_event(row.body).payload.dossier
    agency = str(applied.code.agency)
    try:
        held = await portal.lookup(agency, row.dossier_code)
    except PortalUnavailable as error:
        log.warning("portal unavailable", dossier_code=row.dossier_code, error=str(error))
        return "unreadable"
    if held is None:
        return "missing"
    return "in_step" if _same(applied, held) else "different"


def _same(applied: Dossier, held: dict[str, object]) -> bool:
    item = {key: value for key, value in held.items() if key != PROGRESS}
    steps = held.get(PROGRESS) or []
    try:
        return from_wire(item, steps if isinstance(steps, list) else []) == applied
    except ContractError:
        return False  # what the portal holds is not even valid: not what the bus sent


def _requeued(row: AppliedRow, route: tuple[str, str]) -> Outgoing:
    exchange, key = route  # not dossier.events: the audit stream has this event already
    return Outgoing(
        exchange=exchange,
        routing_key=key,
        body=row.body,
        headers={
            # Its own headers, x-dossier-code among them: the same shard as the event had.
            **row.headers,
            headers.RESYNC: "reconcile",
            # Logs and metrics name the unit from the routing key the connector used.
            headers.ORIGINAL_EXCHANGE: EVENTS_EXCHANGE,
            headers.ORIGINAL_ROUTING_KEY: routing_key(row.unit, row.type or "dossier_upserted"),
        },
        message_id=row.message_id,
        type=row.type,
        app_id=row.app_id,
        timestamp=row.timestamp,
    )
