"""The portal's token bucket, run in virtual time: the loop's clock jumps to the next timer
whenever every task waits, so each test asserts exact times and takes none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bus.sync.ratelimit import TokenBucket


def in_virtual_time(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run `scenario` on a loop whose clock starts at 0 and only moves when nothing can run."""
    loop = asyncio.new_event_loop()
    now = 0.0
    select = loop._selector.select  # type: ignore[attr-defined]

    def jump(timeout: float | None) -> Any:
        nonlocal now
        ready = select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("deadlock: every task waits and no timer is set")
            now += timeout
        return ready

    loop.time = lambda: now  # type: ignore[method-assign]
    loop._selector.select = jump  # type: ignore[attr-defined]
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


async def times_of(bucket: TokenBucket, calls: int) -> list[float]:
    """When each of `calls` concurrent callers got its token."""
    loop = asyncio.get_running_loop()
    granted: list[float] = []

    async def caller() -> None:
        await bucket.acquire()
        granted.append(loop.time())

    await asyncio.gather(*(caller() for _ in range(calls)))
    return granted


def test_callers_get_tokens_evenly_spaced_at_the_rate() -> None:
    async def scenario() -> list[float]:
        return await times_of(TokenBucket(4), 5)

    assert in_virtual_time(scenario) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_a_burst_lets_that_many_calls_go_at_once_after_a_quiet_spell() -> None:
    async def scenario() -> list[float]:
        bucket = TokenBucket(10, burst=3)
        await asyncio.sleep(5)
        return await times_of(bucket, 4)

    assert in_virtual_time(scenario) == pytest.approx([5.0, 5.0, 5.0, 5.1])


def test_slow_down_pauses_every_caller_until_retry_after_and_halves_the_rate() -> None:
    async def scenario() -> tuple[list[float], float]:
        bucket = TokenBucket(10)
        bucket.slow_down(2.0)
        return await times_of(bucket, 3), bucket.rate

    granted, rate = in_virtual_time(scenario)
    assert rate == 5
    assert granted == pytest.approx([2.0, 2.2, 2.4])


def test_a_caller_already_waiting_for_a_token_waits_out_a_pause_that_starts_meanwhile() -> None:
    async def scenario() -> list[float]:
        bucket = TokenBucket(1)
        await bucket.acquire()  # the next token is due at 1.0
        waiting = asyncio.ensure_future(times_of(bucket, 1))
        await asyncio.sleep(0.5)
        bucket.slow_down(3.0)
        return await waiting

    assert in_virtual_time(scenario) == pytest.approx([3.5])


def test_429s_answering_calls_sent_before_the_pause_halve_the_rate_only_once() -> None:
    async def scenario() -> float:
        bucket = TokenBucket(40)
        for _ in range(5):
            bucket.slow_down(1.0)
        return bucket.rate

    assert in_virtual_time(scenario) == 20


def test_a_429_after_the_pause_is_over_halves_the_rate_again_down_to_the_floor() -> None:
    async def scenario() -> list[float]:
        bucket = TokenBucket(8, min_rate=1.5)
        rates = []
        for _ in range(4):
            bucket.slow_down(0.5)
            rates.append(bucket.rate)
            await asyncio.sleep(1)
        return rates

    assert in_virtual_time(scenario) == pytest.approx([4, 2, 1.5, 1.5])


def test_a_retry_after_of_zero_still_pauses_for_one_interval_at_the_new_rate() -> None:
    async def scenario() -> list[float]:
        bucket = TokenBucket(4)
        bucket.slow_down(0)
        return await times_of(bucket, 1)

    assert in_virtual_time(scenario) == pytest.approx([0.5])


def test_each_seconds_worth_of_successes_raises_the_rate_by_one_step() -> None:
    async def scenario() -> list[float]:
        bucket = TokenBucket(16, step=3)
        bucket.slow_down(0)  # down to 8 calls/s
        rates = []
        for _ in range(8 + 11):
            bucket.speed_up()
            rates.append(bucket.rate)
        return rates

    rates = in_virtual_time(scenario)
    assert rates[:8] == [8] * 7 + [11]  # 8 successes at 8/s are one second's worth
    assert rates[8:] == [11] * 10 + [14]


def test_successes_never_raise_the_rate_past_the_maximum() -> None:
    async def scenario() -> float:
        bucket = TokenBucket(10, step=4)
        bucket.slow_down(0)
        for _ in range(100):
            bucket.speed_up()
        return bucket.rate

    assert in_virtual_time(scenario) == 10


def test_a_sender_at_full_pace_climbs_back_from_the_floor_by_about_one_step_a_second() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(10, min_rate=1, step=2)
        while bucket.rate > 1:
            bucket.slow_down(0)
            await asyncio.sleep(1)
        rates = []
        for second in range(1, 7):
            while loop.time() < second + 3.5:  # sample mid-second, clear of rounding
                await bucket.acquire()
                bucket.speed_up()
            rates.append(bucket.rate)
        return rates

    assert in_virtual_time(scenario) == [3, 5, 7, 9, 10, 10]


def test_a_bucket_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
