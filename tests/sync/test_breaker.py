"""The portal's circuit breaker, run in virtual time (see test_ratelimit.in_virtual_time)."""

from __future__ import annotations

import asyncio

import pytest
from test_ratelimit import in_virtual_time

from bus.sync.breaker import BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Caller:
    """A task waiting for the breaker's leave to call; `passed_at` says when it got it."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.passed_at: float | None = None
        self.task = asyncio.ensure_future(self._wait(breaker))

    async def _wait(self, breaker: CircuitBreaker) -> None:
        await breaker.wait_until_closed_or_probe()
        self.passed_at = asyncio.get_running_loop().time()


def opened(threshold: int = 3, **options: float) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold=threshold, **options)  # type: ignore[arg-type]
    for _ in range(threshold):
        breaker.failure()
    assert breaker.state is OPEN
    return breaker


def test_a_closed_breaker_lets_callers_through_at_once() -> None:
    async def scenario() -> float:
        await CircuitBreaker().wait_until_closed_or_probe()
        return asyncio.get_running_loop().time()

    assert in_virtual_time(scenario) == 0


def test_threshold_failures_in_a_row_open_it_and_a_success_in_between_starts_the_count_again() -> (
    None
):
    async def scenario() -> list[BreakerState]:
        breaker = CircuitBreaker(threshold=3)
        states = []
        for outcome in ["failure", "failure", "success", "failure", "failure", "failure"]:
            getattr(breaker, outcome)()
            states.append(breaker.state)
        return states

    assert in_virtual_time(scenario) == [CLOSED] * 5 + [OPEN]


def test_while_open_callers_wait_and_after_the_cooldown_exactly_one_probes() -> None:
    async def scenario() -> list[float | None]:
        breaker = opened(cooldown=10)
        callers = [Caller(breaker) for _ in range(3)]
        await asyncio.sleep(30)
        assert breaker.state is HALF_OPEN
        return [caller.passed_at for caller in callers]

    assert in_virtual_time(scenario) == [10, None, None]


def test_a_successful_probe_closes_it_and_lets_every_waiting_caller_through() -> None:
    async def scenario() -> list[float | None]:
        breaker = opened(cooldown=10)
        callers = [Caller(breaker) for _ in range(3)]
        await asyncio.sleep(12)
        breaker.success()
        await asyncio.sleep(1)
        assert breaker.state is CLOSED
        return [caller.passed_at for caller in callers]

    assert in_virtual_time(scenario) == [10, 12, 12]


def test_a_failed_probe_reopens_it_for_twice_the_cooldown_up_to_the_cap() -> None:
    async def scenario() -> list[float]:
        breaker = opened(cooldown=10, max_cooldown=35)
        probes = []
        for _ in range(4):
            await breaker.wait_until_closed_or_probe()
            probes.append(asyncio.get_running_loop().time())
            breaker.failure()
        return probes

    # open 10 s, then 20, then 35 (not 40), then 35
    assert in_virtual_time(scenario) == [10, 30, 65, 100]


def test_after_a_successful_probe_the_next_opening_starts_from_the_base_cooldown_again() -> None:
    async def scenario() -> float:
        breaker = opened(cooldown=10)
        await breaker.wait_until_closed_or_probe()
        breaker.failure()  # cooldown 20
        await breaker.wait_until_closed_or_probe()
        breaker.success()
        start = asyncio.get_running_loop().time()
        for _ in range(3):
            breaker.failure()
        await breaker.wait_until_closed_or_probe()
        return asyncio.get_running_loop().time() - start

    assert in_virtual_time(scenario) == 10


def test_failures_reported_while_open_by_calls_sent_before_do_not_extend_the_cooldown() -> None:
    async def scenario() -> float:
        breaker = opened(cooldown=10)
        await asyncio.sleep(5)
        for _ in range(10):
            breaker.failure()
        await breaker.wait_until_closed_or_probe()
        return asyncio.get_running_loop().time()

    assert in_virtual_time(scenario) == 10


def test_a_probe_that_never_reports_is_given_up_and_the_next_caller_probes() -> None:
    async def scenario() -> list[float | None]:
        breaker = opened(cooldown=10, probe_timeout=30)
        lost_probe, waiting = Caller(breaker), Caller(breaker)
        await asyncio.sleep(100)
        return [lost_probe.passed_at, waiting.passed_at]

    assert in_virtual_time(scenario) == [10, 40]


def test_the_hook_hears_every_transition_in_order() -> None:
    async def scenario() -> list[tuple[BreakerState, BreakerState]]:
        changes: list[tuple[BreakerState, BreakerState]] = []
        breaker = CircuitBreaker(threshold=1, cooldown=1, on_change=lambda *c: changes.append(c))
        breaker.failure()
        await breaker.wait_until_closed_or_probe()
        breaker.failure()
        await breaker.wait_until_closed_or_probe()
        breaker.success()
        return changes

    assert in_virtual_time(scenario) == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_a_breaker_refuses_a_threshold_below_one() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=0)
