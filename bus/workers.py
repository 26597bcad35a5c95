"""A fixed pool of worker coroutines that run jobs with bounded concurrency.

Cheaper than a task per message: a worker that finishes a job without waiting on anything
takes the next one at once, so a burst of quick jobs costs no scheduling at all. A worker
about to run a job first wakes a colleague if more jobs wait, so jobs that do wait on I/O
still run side by side, up to `size` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

Job = TypeVar("Job")


class WorkerPool(Generic[Job]):
    def __init__(self, size: int, run: Callable[[Job], Awaitable[None]]) -> None:
        self._size = size
        self._run = run  # must not raise: a job's failure is the job's business
        self._jobs: deque[Job] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = 0  # workers woken that have not yet looked for a job
        self._running = 0
        self._workers: list[asyncio.Task[None]] = []
        self._settled = asyncio.Event()
        self._settled.set()

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        return len(self._jobs) + self._running

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._size)]

    def submit(self, job: Job) -> None:
        self._jobs.append(job)
        self._settled.clear()
        if not self._waking:
            self._wake_one()

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for every job to finish; the number still pending."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        return self.pending

    async def close(self) -> None:
        """Stop every worker, cancelling jobs still running."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
                return

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                self._waking -= 1
                continue
            job = self._jobs.popleft()
            if self._jobs and not self._waking:
                self._wake_one()  # in case this job waits: someone else takes the next
            self._running += 1
            try:
                await self._run(job)
            except asyncio.CancelledError:
                # Only close() may stop a worker; a job that awaited something cancelled
                # elsewhere has failed, and the worker goes on to the next.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                log.warning("a job was cancelled from outside; the worker goes on")
            finally:
                self._running -= 1
                if not self._jobs and not self._running:
                    self._settled.set()
