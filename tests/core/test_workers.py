"""The worker pool that runs a consumer's messages: quick jobs run back to back on one worker
at no scheduling cost, jobs that wait on I/O run side by side up to the pool's size, `drain`
says how many are still pending when time runs out, and `close` cancels what still runs.
No broker needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bus.workers import WorkerPool


async def started(size: int, run: Callable[[int], Awaitable[None]]) -> WorkerPool[int]:
    """A pool whose workers have started and wait for jobs."""
    pool = WorkerPool(size, run)
    pool.start()
    await asyncio.sleep(0)
    return pool


class Concurrency:
    """Jobs that wait on I/O for `seconds`, counting how many run at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.finished: list[int] = []

    async def __call__(self, job: int) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        self.finished.append(job)


def test_jobs_that_never_wait_run_in_order_on_one_worker_within_one_turn_of_the_event_loop() -> (
    None
):
    ran: list[int] = []
    workers: set[asyncio.Task[object] | None] = set()

    async def quick(job: int) -> None:
        ran.append(job)
        workers.add(asyncio.current_task())

    async def scenario() -> tuple[int, int]:
        pool = await started(8, quick)
        for job in range(100):
            pool.submit(job)
        submitted = pool.pending
        await asyncio.sleep(0)  # one turn of the event loop, and only one
        left = pool.pending
        await pool.close()
        return submitted, left

    submitted, left = asyncio.run(scenario())

    assert submitted == 100
    assert ran == list(range(100))
    assert left == 0
    assert len(workers) == 1


def test_jobs_that_wait_on_io_run_side_by_side_up_to_the_pool_size() -> None:
    jobs = Concurrency(0.02)

    async def scenario() -> int:
        pool = await started(3, jobs)
        for job in range(12):
            pool.submit(job)
        left = await pool.drain(5)
        await pool.close()
        return left

    assert asyncio.run(scenario()) == 0
    assert jobs.most == 3  # as many as the pool has workers, and never more
    assert sorted(jobs.finished) == list(range(12))


def test_jobs_submitted_in_many_bursts_never_run_more_than_the_pool_size_at_once() -> None:
    jobs = Concurrency(0.005)

    async def scenario() -> int:
        pool = await started(5, jobs)
        for burst in range(20):
            for job in range(burst % 7):  # bursts of 0 to 6 jobs, one loop turn apart
                pool.submit(burst * 10 + job)
            await asyncio.sleep(0.001 * (burst % 3))
        left = await pool.drain(5)
        await pool.close()
        return left

    assert asyncio.run(scenario()) == 0
    assert jobs.most == 5
    assert len(jobs.finished) == sum(burst % 7 for burst in range(20))


def test_a_job_submitted_while_another_waits_on_io_starts_without_waiting_for_it() -> None:
    started_jobs: list[int] = []

    async def scenario() -> list[int]:
        release = asyncio.Event()

        async def blocked(job: int) -> None:
            started_jobs.append(job)
            await release.wait()

        pool = await started(2, blocked)
        pool.submit(1)
        await asyncio.sleep(0.01)
        pool.submit(2)  # job 1 still waits: the idle worker takes job 2 at once
        await asyncio.sleep(0.01)
        seen = list(started_jobs)
        release.set()
        assert await pool.drain(1) == 0
        await pool.close()
        return seen

    assert asyncio.run(scenario()) == [1, 2]


def test_drain_returns_the_number_of_jobs_still_pending_when_its_time_runs_out() -> None:
    async def scenario() -> tuple[int, int, int, float]:
        release = asyncio.Event()

        async def blocked(_job: int) -> None:
            await release.wait()

        pool = await started(2, blocked)
        idle = await pool.drain(1)  # nothing submitted: returns at once
        for job in range(5):
            pool.submit(job)
        loop = asyncio.get_running_loop()
        began = loop.time()
        timed_out = await pool.drain(0.05)  # two running and three waiting for a worker
        waited = loop.time() - began
        release.set()
        finished = await pool.drain(1)
        await pool.close()
        return idle, timed_out, finished, waited

    idle, timed_out, finished, waited = asyncio.run(scenario())

    assert idle == 0
    assert timed_out == 5
    assert waited >= 0.05
    assert finished == 0


def test_close_cancels_the_jobs_still_running_and_starts_no_more() -> None:
    began: list[int] = []
    cancelled: list[int] = []

    async def forever(job: int) -> None:
        began.append(job)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(job)
            raise

    async def scenario() -> None:
        pool = await started(2, forever)
        for job in range(5):
            pool.submit(job)
        await asyncio.sleep(0.01)
        await asyncio.wait_for(pool.close(), 1)
        await asyncio.sleep(0.01)  # nothing starts after the close

    asyncio.run(scenario())

    assert began == [0, 1]
    assert cancelled == [0, 1]
