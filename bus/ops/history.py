"""Re-send a unit's history from the `dossier.audit` stream: `bus replay --unit H29 --since T`.

For when the portal lost what it had been sent (restored from a backup, a bug on its side):
every event of the unit the stream received since T goes back to the sync service, as a
retry tier would return it: through the default exchange to portal.sync, or through the
shards exchange to its dossier's shard (`sync_route`; its x-dossier-code header goes along),
with its original routing key in the bus's header. Body and identity are untouched, so
signatures verify; the sync service's version guard drops what the state store says the
portal already has. Reading stops at the stream's end as it was when the command started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog

from bus import headers
from bus.broker import Connection
from bus.errors import Forbidden
from bus.message import Message, Outgoing
from bus.ops import audit
from bus.ops.audit import AuditEntry
from bus.ops.operator import Operator
from bus.ops.store import OpsStore
from bus.ops.stream import OFFSET, read_stream
from bus.publisher import Publisher
from bus.topology import AUDIT_STREAM, SYNC_QUEUE
from schemas import EVENT_TYPES

log = structlog.get_logger(__name__)


@dataclass
class Resent:
    unit: str
    read: int = 0  # messages of every unit read from the stream
    sent: int = 0  # events of the unit sent back to the sync service, confirmed
    failed: int = 0  # not confirmed by the broker
    end: int = 0  # the stream's last offset when the reading started
    first: int | None = None  # the first offset read
    errors: list[str] = field(default_factory=list)
    to: str = SYNC_QUEUE  # where they went: portal.sync, or the shards exchange

    @property
    def total(self) -> int:
        """Messages between the first read and the end: what a progress bar counts to."""
        return 0 if self.first is None else self.end - self.first + 1

    def __str__(self) -> str:
        text = f"{self.unit}: {self.sent} events re-sent to {self.to}, {self.read} read"
        return text + (f", {self.failed} NOT confirmed" if self.failed else "")


async def resend_history(
    connection: Connection,
    operator: Operator,
    unit: str,
    since: datetime,
    *,
    until: datetime | None = None,
    store: OpsStore | None = None,
    progress: Callable[[Resent], None] | None = None,
    window: int = 1000,
    route: tuple[str, str] = ("", SYNC_QUEUE),
) -> Resent:
    """Re-send `unit`'s events the audit stream received since `since` (and, with `until`,
    that occurred up to `until`) along `route`, `sync_route(settings)`; audited in `store`
    when there is one."""
    if not operator.may_act_on(unit):
        if store is not None:
            store.audit(_entry(operator, unit, since, 0, audit.FORBIDDEN, ""))
        raise Forbidden(operator.name, unit)
    publisher = Publisher(connection, window=window)
    result = Resent(unit, to=route[0] or route[1])
    confirms: list[asyncio.Future[None]] = []
    latest = None if until is None else int(until.timestamp())

    async def handle(message: Message, end: int) -> None:
        result.read += 1
        result.end = end
        if result.first is None:
            result.first = int(message.headers.get(OFFSET, 0))
        if _wanted(message, unit, latest):
            confirms.append(await publisher.send(resent(message, operator.name, route)))
        if progress is not None:
            progress(result)

    await read_stream(connection, AUDIT_STREAM, since, handle)
    outcomes = await asyncio.gather(*confirms, return_exceptions=True)
    result.sent = sum(outcome is None for outcome in outcomes)
    result.failed = len(outcomes) - result.sent
    result.errors = [str(o) for o in outcomes if isinstance(o, BaseException)][:5]
    if store is not None:
        outcome = audit.FAILED if result.failed else audit.DONE
        detail = "; ".join(result.errors)
        store.audit(_entry(operator, unit, since, result.sent, outcome, detail))
    log.info("history re-sent", unit=unit, sent=result.sent, read=result.read)
    return result


def resent(message: Message, by: str, route: tuple[str, str] = ("", SYNC_QUEUE)) -> Outgoing:
    copy = message.forwarded(*route, **{headers.REPLAYED_BY: by})
    return replace(copy, headers={k: v for k, v in copy.headers.items() if k != OFFSET})


def _wanted(message: Message, unit: str, latest: int | None) -> bool:
    message_unit, _, event_type = message.routing_key.partition(".")
    if message_unit != unit or event_type not in EVENT_TYPES:
        return False
    return latest is None or message.timestamp is None or message.timestamp <= latest


def _entry(
    operator: Operator, unit: str, since: datetime, count: int, outcome: str, detail: str
) -> AuditEntry:
    return AuditEntry(
        at=datetime.now(UTC),
        actor=operator.name,
        action=audit.HISTORY_REPLAY,
        unit=unit,
        target=f"{AUDIT_STREAM} since {since.isoformat()}",
        count=count,
        outcome=outcome,
        detail=detail,
    )
