"""Drop a message whose event this process has already handled.

Keyed by event id, never by the `redelivered` flag: a connector that re-publishes after a
lost confirm sends a new delivery of the same event. The memory is bounded (the oldest ids
go first); the sync service's per-dossier `seq` guard is the durable line of defence.
"""

from __future__ import annotations

from collections import OrderedDict

from bus.headers import RESYNC
from bus.message import Message
from bus.middleware.base import Handler, Middleware


class Dedup(Middleware):
    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()

    async def __call__(self, message: Message, call_next: Handler) -> None:
        if message.headers.get(RESYNC):
            # Re-queued on purpose by `bus reconcile`: the version guard lets one copy through.
            await call_next(message)
            return
        key = str(message.event.event_id if message.event else message.message_id)
        if key in self._seen or key in self._in_flight:
            # A copy in flight counts as seen: if it fails, its retry carries the event on.
            message.outcome = "duplicate"
            return
        self._in_flight.add(key)
        try:
            await call_next(message)
        finally:
            self._in_flight.discard(key)
        # Only after success: a failed attempt must not make its retry look like a duplicate.
        self._seen[key] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
