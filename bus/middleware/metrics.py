"""Count every message by queue, unit and outcome, and time its handling."""

from __future__ import annotations

import time

from prometheus_client import Counter

from bus.message import Message
from bus.metrics import HANDLING_SECONDS, MESSAGES
from bus.middleware.base import Handler, Middleware


class Metrics(Middleware):
    def __init__(self, queue: str) -> None:
        self._queue = queue
        self._timer = HANDLING_SECONDS.labels(queue)
        # labels() takes a lock and builds a tuple on every call; the few (unit, outcome)
        # pairs a queue sees are looked up once.
        self._counters: dict[tuple[str, str], Counter] = {}

    async def __call__(self, message: Message, call_next: Handler) -> None:
        started = time.perf_counter()
        try:
            await call_next(message)
        finally:
            self._timer.observe(time.perf_counter() - started)
            key = (message.unit, message.outcome if message.outcome != "pending" else "failed")
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = MESSAGES.labels(self._queue, *key)
            counter.inc()
