"""The dead-letter queue, for operators: collect, browse, replay, discard.

`collect` moves what waits in portal.sync.dlq into the `OpsStore`, acking each message only
once the store committed it, so a crash duplicates (the row absorbs it) and never loses.
Everything else reads and changes the store, scoped to the operator's units: a provincial
operator asking about another unit gets `Forbidden`, and the attempt is audited, as is every
replay and discard (who, when, what, how many).

A replay publishes the original message again, body and identity untouched (its signature
still verifies), to the sync service as a retry tier returns a message: through the default
exchange to portal.sync, or, with sync shards, through the shards exchange, whose hash of
its x-dossier-code header picks its shard (`sync_route`); both are closed to connectors, so
the bus's headers survive. Its attempt count starts again and its failure
headers are dropped; it says who replayed it and how many times. If it fails again it goes
through the normal retries back to the dead-letter queue, and, once collected, back to its
row, waiting, with one more failure in its history: nothing replays by itself, so nothing
loops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from bus import headers
from bus.broker import Connection
from bus.errors import Forbidden, NotFound
from bus.message import Message, Outgoing
from bus.ops import audit
from bus.ops.audit import AuditEntry
from bus.ops.deadletter import DeadLetter
from bus.ops.operator import Operator
from bus.ops.store import OpsStore
from bus.publisher import Publisher
from bus.settings import Settings
from bus.topology import DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, SYNC_QUEUE, sync_route

log = structlog.get_logger(__name__)

COLLECT_BATCH = 200  # messages taken from the queue per store transaction, at most
SHOWN_IDS = 20  # ids an audit entry names before it says "and N more"

# Spelled once here: inside the class, `list` is the method.
Letters = list[DeadLetter]
Ids = list[str]
Entries = list[AuditEntry]

# What a replay leaves behind: the last trip's failure, and the broker's own trail.
_NOT_REPLAYED = frozenset(
    {
        headers.ATTEMPT,
        headers.FIRST_FAILURE,
        headers.LAST_FAILURE,
        headers.REASON,
        headers.ERROR_CLASS,
        headers.ERROR,
        headers.REPLAYED_BY,
        headers.REPLAYS,
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
    }
)


class DeadLetters:
    def __init__(self, store: OpsStore, connection: Connection, settings: Settings) -> None:
        self._store = store
        self._connection = connection
        self._settings = settings
        self._publisher: Publisher | None = None

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def store(self) -> OpsStore:
        return self._store

    # ---- from the queue into the store -----------------------------------------------------

    async def collect(self, idle: float = 0.5) -> int:
        """Move every message waiting in portal.sync.dlq into the store; stop once none came
        for `idle` seconds. How many were moved."""
        channel = await self._connection.channel()
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        tag = await channel.consume(
            DEAD_LETTER_QUEUE, inbox.put_nowait, prefetch=COLLECT_BATCH, arguments=None
        )
        collected = 0
        try:
            while True:
                try:
                    batch = [await asyncio.wait_for(inbox.get(), idle)]
                except TimeoutError:
                    return collected
                while not inbox.empty():
                    batch.append(inbox.get_nowait())
                letters = [DeadLetter.from_message(message) for message in batch]
                await asyncio.to_thread(self._store.put, letters)
                for message in batch:  # only now: the store has them
                    channel.ack(message.delivery_tag)
                collected += len(batch)
        finally:
            with contextlib.suppress(Exception):
                await channel.cancel(tag)
            await channel.close()  # what was delivered but not stored goes back
            if collected:
                log.info("dead letters collected", count=collected)

    # ---- reading ---------------------------------------------------------------------------

    def list(
        self,
        operator: Operator,
        *,
        unit: str | None = None,
        reason: str | None = None,
        status: str | None = "waiting",
        limit: int = 100,
        offset: int = 0,
    ) -> list[DeadLetter]:
        """Dead letters the operator may see, latest first; `status` None: any status."""
        units = self._scope(operator, unit, audit.LIST)
        return self._store.find(
            units=units, reason=reason, status=status, limit=limit, offset=offset
        )

    def get(self, operator: Operator, id: str) -> DeadLetter:
        letter = self._store.get(id)
        if letter is None:
            raise NotFound(id)
        self._require(operator, {letter.unit: 1}, audit.SHOW, id)
        return letter

    def counts(self, operator: Operator) -> dict[tuple[str, str], int]:
        """Waiting dead letters per (unit, reason), of the operator's units."""
        return self._store.counts(units=operator.units)

    def select(self, operator: Operator, unit: str | None = None, reason: str | None = None) -> Ids:
        """Ids of the waiting dead letters a bulk action by filter acts on."""
        return self._store.ids(units=self._scope(operator, unit, audit.LIST), reason=reason)

    def audit_log(self, operator: Operator, *, limit: int = 100, offset: int = 0) -> Entries:
        """The latest operator actions: all of them for a national operator, else those
        about the operator's units."""
        return self._store.audit_entries(units=operator.units, limit=limit, offset=offset)

    # ---- acting ----------------------------------------------------------------------------

    async def replay(
        self, operator: Operator, ids: Sequence[str], *, target: str | None = None
    ) -> int:
        """Send these dead letters back to the sync service; how many were (those not
        waiting are left alone). `target` names the filter that chose them, for the audit log."""
        letters = await self._acting(operator, ids, audit.REPLAY, target)
        publisher = self._publisher_now()
        route = sync_route(self._settings)
        sent = [
            (letter, await publisher.send(replay_message(letter, operator.name, route=route)))
            for letter in letters
        ]
        outcomes = await asyncio.gather(*(confirm for _, confirm in sent), return_exceptions=True)
        confirmed = [letter for (letter, _), out in zip(sent, outcomes, strict=True) if out is None]
        for letter in confirmed:  # only confirmed ones: the broker has them
            await asyncio.to_thread(
                self._store.mark_replayed, letter.id, letter.replays + 1, operator.name
            )
        failures = [out for out in outcomes if isinstance(out, BaseException)]
        detail = f"{len(failures)} not confirmed: {failures[0]}" if failures else ""
        await self._record(operator, audit.REPLAY, letters, confirmed, target, detail)
        log.info("dead letters replayed", operator=operator.name, count=len(confirmed))
        if failures:
            raise failures[0]
        return len(confirmed)

    async def discard(
        self, operator: Operator, ids: Sequence[str], *, target: str | None = None
    ) -> int:
        """Mark these dead letters discarded (kept, out of the way); how many were."""
        letters = await self._acting(operator, ids, audit.DISCARD, target)
        count = await asyncio.to_thread(
            self._store.mark_discarded, [letter.id for letter in letters], operator.name
        )
        await self._record(operator, audit.DISCARD, letters, letters, target, "")
        return count

    async def _acting(
        self, operator: Operator, ids: Sequence[str], action: str, target: str | None
    ) -> Letters:
        """The waiting dead letters among `ids`, once every id is known and the operator's."""
        wanted = list(dict.fromkeys(ids))
        units = await asyncio.to_thread(self._store.units_of, wanted)
        if missing := [id for id in wanted if id not in units]:
            raise NotFound(missing[0])
        self._require(operator, Counter(units.values()), action, target or _named(wanted))
        return await asyncio.to_thread(self._store.find, ids=wanted, status="waiting", limit=None)

    async def _record(
        self,
        operator: Operator,
        action: str,
        chosen: Sequence[DeadLetter],
        done: Collection[DeadLetter],
        target: str | None,
        detail: str,
    ) -> None:
        """One audit entry per unit: an operator reading the log sees their unit's own."""
        done_ids = {letter.id for letter in done}
        by_unit: dict[str | None, Ids] = {}
        for letter in chosen:
            by_unit.setdefault(letter.unit, []).append(letter.id)
        for unit, unit_ids in sorted(by_unit.items(), key=lambda item: item[0] or "") or [
            (None, [])
        ]:
            count = sum(id in done_ids for id in unit_ids)
            outcome = audit.FAILED if detail else audit.DONE
            await asyncio.to_thread(
                self._store.audit,
                _entry(operator, action, unit, target or _named(unit_ids), count, outcome, detail),
            )

    # ---- the operator's reach --------------------------------------------------------------

    def _scope(self, operator: Operator, unit: str | None, action: str) -> frozenset[str] | None:
        if unit is None:
            return operator.units
        self._require(operator, {unit: 0}, action, f"unit={unit}")
        return frozenset({unit})

    def _require(self, operator: Operator, units: dict[str, int], action: str, target: str) -> None:
        for unit, count in sorted(units.items()):
            if not operator.may_act_on(unit):
                self._store.audit(
                    _entry(operator, action, unit, target, count, audit.FORBIDDEN, "")
                )
                log.warning("operator refused", operator=operator.name, unit=unit, action=action)
                raise Forbidden(operator.name, unit)

    def _publisher_now(self) -> Publisher:
        # Made on first use, in the running loop: reading needs no broker at all.
        if self._publisher is None:
            self._publisher = Publisher(self._connection, window=self._settings.publish_window)
        return self._publisher


def replay_message(
    letter: DeadLetter, by: str, *, route: tuple[str, str] = ("", SYNC_QUEUE)
) -> Outgoing:
    """The dead letter as it first arrived, its x-dossier-code header included, addressed to
    the sync service again: `route` is `sync_route(settings)`."""
    kept: dict[str, Any] = {k: v for k, v in letter.headers.items() if k not in _NOT_REPLAYED}
    kept.setdefault(headers.ORIGINAL_EXCHANGE, EVENTS_EXCHANGE)
    exchange, key = route
    return Outgoing(
        exchange=exchange,
        routing_key=key,
        body=letter.body,
        headers={
            **kept,
            headers.ORIGINAL_ROUTING_KEY: letter.routing_key,
            headers.REPLAYED_BY: by,
            headers.REPLAYS: letter.replays + 1,
        },
        message_id=letter.id,
        content_type=letter.content_type or "application/json",
        type=letter.event_type,
        app_id=letter.connector,
        timestamp=letter.timestamp,
    )


def _entry(
    operator: Operator,
    action: str,
    unit: str | None,
    target: str,
    count: int,
    outcome: str,
    detail: str,
) -> AuditEntry:
    return AuditEntry(
        at=datetime.now(UTC),
        actor=operator.name,
        action=action,
        unit=unit,
        target=target,
        count=count,
        outcome=outcome,
        detail=detail,
    )


def _named(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")
