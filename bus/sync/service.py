"""The sync service: keep the national portal in step with every dossier event.

For each event, in order:

1. The version guard. The event is applied only if its `seq` is newer than the last one
   applied for its dossier (the state store remembers it). Older events are stale: acked,
   counted, logged, never sent. Every event carries the dossier's whole snapshot, so the
   newest one alone makes the portal right. A batch that failed may still have reached the
   portal (a call that timed out, a progress call failing after the dossier call): until
   its events come back from their retries and are applied, their dossiers take no older
   event either. The state store keeps these doubts before the events go to their retries,
   so a service killed and started again keeps them too (`resume`).
2. One dossier, one update at a time. While an update of a dossier is on its way to the
   portal, the next waits for it; an update still waiting for its batch is replaced by a
   newer one of the same dossier (superseded: acked, never sent).
3. Batching. Updates are grouped per agency (`madonvi`) into `DongBoHoSoMC` calls, new
   dossiers as creations and known ones as updates, then their new processing steps into
   one `CapNhatTienDoHoSoMC` call. The portal judges each item alone: a rejected item fails
   only its own event (dead-lettered with the portal's message); "already exists" is sent
   again as an update, "does not exist" as a creation.
4. Only when the portal has accepted an update is it recorded in the state store; only then
   is the message acked.
5. Only what is still ours is sent. Several sync workers share the shards of the sync
   queue, each shard with a single active consumer; a shard moves to another worker when
   its consumer's channel dies. A message that came on a channel since closed is given
   again by the broker, maybe to another worker: it is withdrawn (retried, never sent from
   here), checked right before each portal call leaves. And since another worker may have
   applied this worker's dossiers meanwhile, every (re)open of the connection empties the
   cache and reads the doubts back from the store, which the workers share (`reopen`).

A portal that is down raises PortalUnavailable (the retry tiers take over) until the
circuit breaker opens; from then on calls wait for it, so messages stay unacked and the
backlog stays in RabbitMQ.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from bus import headers
from bus.errors import PortalRejected, Withdrawn
from bus.logging import handling
from bus.message import Message
from bus.metrics import SYNC_LAG_SECONDS, SYNC_UPDATES, labelled
from bus.sync.batcher import Batcher
from bus.sync.portal import ItemResult, PortalClient
from bus.sync.store import Applied, AppliedRow, StateStore
from schemas import Dossier, Event
from schemas.wire import to_dossier_item, to_progress_item

log = structlog.get_logger(__name__)

EXISTS, MISSING = 2, 3  # the portal's per-item codes that call for the other kind of write
# Doubts leave memory when settled, and forgetting one early would let an older event
# overwrite what may be on the portal: the bound is only against a runaway.
_DOUBTS_MAX = 500_000


@dataclass(eq=False, slots=True)
class Update:
    """One event on its way to the portal; `done` tells its handler how it ended."""

    event: Event
    message: Message
    resync: bool = False  # re-queued by reconcile: write it all again, as if new
    done: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # Its batch is over, which may be after `done`: a refused item is settled while the rest
    # of its batch is still on its way. The event to wait on is made only for a next update
    # of the same dossier that has to wait, which few do.
    _sent: bool = False
    _waiting: asyncio.Event | None = None

    @property
    def dossier(self) -> Dossier:
        return self.event.payload.dossier

    async def wait_sent(self) -> None:
        if not self._sent:
            if self._waiting is None:
                self._waiting = asyncio.Event()
            await self._waiting.wait()

    def mark_sent(self) -> None:
        self._sent = True
        if self._waiting is not None:
            self._waiting.set()


class SyncService:
    def __init__(
        self,
        store: StateStore,
        portal: PortalClient,
        *,
        batch_size: int = 100,
        linger: float = 0.005,
        concurrency: int = 4,
        cache_size: int = 20_000,
        lease: Callable[[Message], bool] | None = None,
    ) -> None:
        """`lease(message)`: whether a message being handled is still this service's to
        send (the consumer's `holds`); by default every one is."""
        self._store = store
        self._portal = portal
        self._lease = lease or (lambda _message: True)
        self._batcher: Batcher[Update] = Batcher(
            self._send, size=batch_size, linger=linger, concurrency=concurrency
        )
        self._queued: dict[str, Update] = {}  # waiting for their batch
        self._sending: dict[str, Update] = {}  # in a batch on its way
        # The newest seq per dossier whose batch failed after it may have reached the portal.
        self._in_doubt: OrderedDict[str, int] = OrderedDict()
        # What the store holds, for the dossiers seen lately: while this worker holds a
        # dossier's shard it is the only writer of the dossier, so the cache is never behind
        # the store; it is emptied whenever the worker may have lost a shard (`reopen`).
        self._applied: OrderedDict[str, Applied] = OrderedDict()
        self._cache_size = cache_size

    async def handle(self, message: Message) -> None:
        """The consumer's handler: returns once the event is applied, stale or superseded."""
        event = message.event
        assert event is not None, "the Decode middleware runs first"
        code = str(event.dossier_code)
        while (sending := self._sending.get(code)) is not None:
            await sending.wait_sent()  # its outcome is its own handler's business
        applied = await self._last_applied(code)
        queued = self._queued.get(code)
        newest = max(applied.seq if applied else -1, queued.event.seq if queued else -1)
        if message.headers.get(headers.RESYNC) and queued is None:
            newest -= 1  # re-queued by reconcile: the portal lost what was applied
        # Only the event in doubt itself (its retry, or a copy) may go after it.
        newest = max(newest, self._in_doubt.get(code, 0) - 1)
        if event.seq <= newest:
            message.outcome = "stale"
            labelled(SYNC_UPDATES, event.unit, "stale").inc()
            log.info("stale event not sent", seq=event.seq, newest_seq=newest)
            return
        if queued is not None:
            queued.done.set_result("superseded")
            labelled(SYNC_UPDATES, event.unit, "superseded").inc()
        update = Update(event, message, resync=bool(message.headers.get(headers.RESYNC)))
        self._queued[code] = update
        self._batcher.add(str(event.source.agency), update)
        message.outcome = await update.done

    async def resume(self) -> None:
        """Take back the doubts an earlier run of the service left in the store."""
        for code, seq in (await self._store.doubts()).items():
            self._in_doubt[code] = max(seq, self._in_doubt.get(code, seq))

    async def reopen(self) -> None:
        """The connection to the broker (re)opened. While it was down, the shards it held
        went to other workers, which may have applied newer events of its dossiers: forget
        the cache, withdraw what still waits for its batch from the lost connection, and
        read the doubts back from the store. Doubts kept in memory stay: one the store no
        longer has was settled by an event at least as new, so it stops only stale ones."""
        self._applied.clear()
        for update in list(self._queued.values()):
            self._still_held([update])
        await self.resume()

    async def close(self) -> None:
        await self._batcher.close()

    async def _last_applied(self, code: str) -> Applied | None:
        applied = self._applied.get(code)
        if applied is None:
            applied = (await self._store.get([code])).get(code)
            if applied is not None:
                self._remember(applied)
        return applied

    async def _known(self, updates: list[Update]) -> dict[str, Applied | None]:
        """What the portal holds of each update's dossier; None for one to write anew."""
        codes = [str(u.event.dossier_code) for u in updates]
        known = {code: self._applied.get(code) for code in codes}
        # Read when handled, but a busy cache may have let some go since: the store has them.
        evicted = [code for code, applied in known.items() if applied is None]
        if evicted:
            known.update(await self._store.get(evicted))
        for update in updates:
            if update.resync:
                known[str(update.event.dossier_code)] = None
        return known

    def _remember(self, applied: Applied) -> None:
        self._applied[applied.dossier_code] = applied
        self._applied.move_to_end(applied.dossier_code)
        if len(self._applied) > self._cache_size:
            self._applied.popitem(last=False)

    async def _send(self, agency: str, batch: list[Update]) -> None:
        # The batch's task copied the context of the handler that filled it: its lines are
        # about the batch, not that one message.
        handling.set(None)
        updates = [update for update in batch if not update.done.done()]
        for update in updates:
            code = str(update.event.dossier_code)
            if self._queued.get(code) is update:
                del self._queued[code]
            self._sending[code] = update
        try:
            await self._apply(agency, updates)
        except Exception:
            doubted = [update for update in updates if not update.done.done()]
            for update in doubted:
                self._doubt(update)
            # Kept before the events go to their retries: a restart must not forget them.
            await self._store.doubt(
                {str(u.event.dossier_code): self._in_doubt[str(u.event.dossier_code)]
                 for u in doubted}
            )  # fmt: skip
            raise
        finally:
            for update in updates:
                code = str(update.event.dossier_code)
                if self._sending.get(code) is update:
                    del self._sending[code]
                update.mark_sent()

    def _doubt(self, update: Update) -> None:
        code, seq = str(update.event.dossier_code), update.event.seq
        self._in_doubt[code] = max(seq, self._in_doubt.get(code, seq))
        self._in_doubt.move_to_end(code)
        if len(self._in_doubt) > _DOUBTS_MAX:
            self._in_doubt.popitem(last=False)

    def _settle_doubt(self, update: Update) -> None:
        """The update was applied, or refused: the portal holds no newer one it sent."""
        code = str(update.event.dossier_code)
        if self._in_doubt.get(code, -1) <= update.event.seq:
            self._in_doubt.pop(code, None)

    def _still_held(self, updates: list[Update]) -> list[Update]:
        """The updates still ours to send; the others are withdrawn (retried)."""
        held = []
        for update in updates:
            if self._lease(update.message):
                held.append(update)
                continue
            code = str(update.event.dossier_code)
            if self._queued.get(code) is update:
                del self._queued[code]
            if not update.done.done():
                update.done.set_exception(Withdrawn("its channel closed before it was sent"))
        return held

    def _guard(self, updates: list[Update]) -> Callable[[], bool]:
        return lambda: all(self._lease(update.message) for update in updates)

    async def _apply(self, agency: str, updates: list[Update]) -> None:
        updates = self._still_held(updates)
        if not updates:
            return
        known = await self._known(updates)
        accepted = await self._write_dossiers(agency, updates, known)
        accepted = await self._write_progress(agency, accepted, known)
        if not accepted:
            return
        now = datetime.now(UTC)
        rows = [self._row(update, now) for update in accepted]
        await self._store.record(rows)
        for update, row in zip(accepted, rows, strict=True):
            if self._lease(update.message):
                # Not otherwise: the dossier's shard may be another worker's by now.
                self._remember(Applied(row.dossier_code, row.seq, row.progress_count, True))
            self._settle_doubt(update)
            unit = update.event.unit
            labelled(SYNC_UPDATES, unit, "applied").inc()
            lag = (now - update.event.occurred_at).total_seconds()
            labelled(SYNC_LAG_SECONDS, unit).observe(lag)
            update.done.set_result("applied")

    async def _write_dossiers(
        self, agency: str, updates: list[Update], known: dict[str, Applied | None]
    ) -> list[Update]:
        """Create or update each dossier; the accepted updates, in order."""
        pending = {
            True: [u for u in updates if self._on_portal(u, known)],
            False: [u for u in updates if not self._on_portal(u, known)],
        }
        accepted: list[Update] = []
        for _round in range(2):  # a second round for "exists" / "missing" answers
            retry: dict[bool, list[Update]] = {True: [], False: []}
            for updating, found in pending.items():
                group = self._still_held(found)
                if not group:
                    continue
                items = [to_dossier_item(update.dossier) for update in group]
                results = await self._portal.upsert_dossiers(
                    agency, items, updating=updating, guard=self._guard(group)
                )
                for update, result in zip(group, results, strict=True):
                    if result.code == 0:
                        accepted.append(update)
                    elif result.code in (EXISTS, MISSING) and _round == 0:
                        retry[result.code == EXISTS].append(update)
                        if result.code == MISSING:
                            # The portal lost the dossier, and its steps with it.
                            known[str(update.event.dossier_code)] = None
                    else:
                        self._reject(update, result)
            pending = retry
        return accepted

    async def _write_progress(
        self, agency: str, updates: list[Update], known: dict[str, Applied | None]
    ) -> list[Update]:
        """Send the processing steps the portal has not had; the updates still accepted.
        (Their dossiers are on the portal by now: one whose lease is lost is not dropped here
        but withdrawn by the guard with the whole call, and so kept in doubt.)"""
        owners: list[Update] = []
        items: list[dict[str, str]] = []
        for update in updates:
            for step in _new_steps(update.dossier, known.get(str(update.event.dossier_code))):
                owners.append(update)
                items.append(to_progress_item(update.dossier.code, step))
        if not items:
            return updates
        results = await self._portal.record_progress(agency, items, guard=self._guard(owners))
        for owner, result in zip(owners, results, strict=True):
            if result.code != 0 and not owner.done.done():
                self._reject(owner, result)
        return [update for update in updates if not update.done.done()]

    @staticmethod
    def _on_portal(update: Update, known: dict[str, Applied | None]) -> bool:
        applied = known.get(str(update.event.dossier_code))
        return applied is not None and applied.on_portal

    def _reject(self, update: Update, result: ItemResult) -> None:
        self._settle_doubt(update)
        labelled(SYNC_UPDATES, update.event.unit, "rejected").inc()
        update.done.set_exception(
            PortalRejected(f"the portal refused {result.dossier_code}: {result.message}")
        )

    @staticmethod
    def _row(update: Update, now: datetime) -> AppliedRow:
        message = update.message
        return AppliedRow(
            dossier_code=str(update.event.dossier_code),
            unit=update.event.unit,
            seq=update.event.seq,
            progress_count=len(update.dossier.progress),
            applied_at=now,
            body=message.body,
            message_id=message.message_id,
            type=message.type,
            app_id=message.app_id,
            timestamp=message.timestamp,
            headers=_resendable(message),
        )


def _new_steps(dossier: Dossier, applied: Applied | None) -> tuple[Any, ...]:
    # Steps are appended, never rewritten, in every system we know; if a snapshot has fewer
    # than the portal got, its history was rewritten: send it all (the portal keys steps).
    steps = dossier.progress
    sent = applied.progress_count if applied is not None else 0
    return steps[sent:] if len(steps) >= sent else steps


def _resendable(message: Message) -> dict[str, Any]:
    """The headers to store with an applied event: its own, not the retry history, and who
    published it, which a copy re-queued by reconcile must still say to be accepted."""
    kept = {key: value for key, value in message.headers.items() if key not in headers.BUS_OWNED}
    if message.published_by is not None:
        kept[headers.PUBLISHED_BY] = message.published_by
    return kept
