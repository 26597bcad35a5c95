"""Count every message by queue, unit and outcome, and time its handling."""

from __future__ import annotations

import time

from bus.message import Message
from bus.metrics import HANDLING_SECONDS, MESSAGES, labelled
from bus.middleware.base import Handler, Middleware


class Metrics(Middleware):
    def __init__(self, queue: str) -> None:
        self._queue = queue
        self._timer = labelled(HANDLING_SECONDS, queue)

    async def __call__(self, message: Message, call_next: Handler) -> None:
        started = time.perf_counter()
        try:
            await call_next(message)
        finally:
            self._timer.observe(time.perf_counter() - started)
            outcome = message.outcome if message.outcome != "pending" else "failed"
            labelled(MESSAGES, self._queue, message.unit, outcome).inc()
