"""Gather items into batches per key, and send several batches at once.

Items wait in a queue per key. A batch leaves when a sending slot is free and its key has
`size` items waiting, or its oldest item has waited `linger` seconds; it takes up to `size`
items. At most `concurrency` batches are on their way at once, so under load items gather
while every slot is busy and the next batch leaves full: batches grow with the load, and an
idle service still sends a lone item after `linger`. The sender settles each item itself
(items carry their own futures); if it raises, every item of the batch still unsettled fails
with that error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar


class Settled(Protocol):
    @property
    def done(self) -> asyncio.Future[str]: ...


Item = TypeVar("Item", bound=Settled)
Send = Callable[[str, list[Item]], Awaitable[None]]


class Batcher(Generic[Item]):
    def __init__(self, send: Send[Item], *, size: int, linger: float, concurrency: int) -> None:
        self._send = send
        self._size = size
        self._linger = linger
        self._free = concurrency
        self._waiting: dict[str, deque[tuple[float, Item]]] = {}  # per key: (arrival, item)
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._closing = False

    def add(self, key: str, item: Item) -> None:
        loop = asyncio.get_running_loop()
        self._waiting.setdefault(key, deque()).append((loop.time(), item))
        self._dispatch()

    def _dispatch(self) -> None:
        """Start every batch that may leave now; else wake up when the next one may."""
        loop = asyncio.get_running_loop()
        while self._free > 0:
            key = self._ready(loop.time())
            if key is None:
                break
            queue = self._waiting[key]
            batch = [queue.popleft()[1] for _ in range(min(self._size, len(queue)))]
            if not queue:
                del self._waiting[key]
            self._free -= 1
            task = asyncio.create_task(self._send_batch(key, batch))
            self._sending.add(task)
            task.add_done_callback(self._sent)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._free > 0 and self._waiting:
            oldest = min(queue[0][0] for queue in self._waiting.values())
            self._timer = loop.call_at(oldest + self._linger, self._dispatch)

    def _ready(self, now: float) -> str | None:
        """A key whose batch may leave: full, lingered long enough, or we are closing."""
        due: str | None = None
        for key, queue in self._waiting.items():
            if len(queue) >= self._size:
                return key
            if due is None and (self._closing or now - queue[0][0] >= self._linger):
                due = key
        return due

    async def _send_batch(self, key: str, batch: list[Item]) -> None:
        try:
            await self._send(key, batch)
        except Exception as error:  # the sender's failure is every waiting item's
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(error)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._free += 1
        self._dispatch()

    async def close(self) -> None:
        """Send what is waiting and wait for every batch to be settled."""
        self._closing = True
        self._dispatch()
        while self._sending or self._waiting:
            await asyncio.gather(*self._sending, return_exceptions=True)
            self._dispatch()
