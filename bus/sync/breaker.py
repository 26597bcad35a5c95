"""A circuit breaker for the portal: stop calling a portal that is down, and find out when
it is back with one call rather than a stampede.

    closed ──threshold consecutive failures──▶ open ──cooldown over──▶ half-open
       ▲                                         ▲                        │
       └───────────── the probe succeeds ────────┼────────────────────────┤
                                                 └─── the probe fails ────┘
                                                      (cooldown doubles, up to a cap)

Consecutive failures rather than a failure rate: the sync service's calls to one portal
are few and alike, so a run of failures is the signal, and a count needs no window to tune.

While the breaker is not closed, callers wait in `wait_until_closed_or_probe` instead of
failing: the sync service keeps its messages unacked, so the backlog stays in RabbitMQ and
no message burns a retry on a portal known to be down. In half-open exactly one caller, the
probe, goes through; the rest wait for its verdict. A probe that never reports (its task was
cancelled) is given up after `probe_timeout`, and the next caller probes instead.

Time is the event loop's clock, so tests can run the breaker in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from enum import Enum

import structlog

log = structlog.get_logger("bus.sync.breaker")


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateChange = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 5.0,
        max_cooldown: float = 300.0,
        probe_timeout: float = 60.0,
        name: str = "portal",
        on_change: StateChange | None = None,
    ) -> None:
        """`threshold`: consecutive failures that open the breaker. `cooldown`: seconds it
        stays open the first time; each failed probe doubles it, up to `max_cooldown`.
        `probe_timeout`: how long a probe may stay silent before another caller probes;
        longer than a portal call can take. `on_change(old, new)` is called on every
        transition, e.g. to count openings in a metric; it must not raise."""
        if threshold < 1 or cooldown <= 0:
            raise ValueError("threshold must be at least 1 and cooldown positive")
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self.probe_timeout = probe_timeout
        self.name = name
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive, while closed
        self._cooldown = cooldown  # of the current or next opening
        self._open_until = 0.0
        self._probe_since = 0.0
        self._changed = asyncio.Event()  # set, and replaced, at every transition

    @property
    def state(self) -> BreakerState:
        return self._state

    async def wait_until_closed_or_probe(self) -> None:
        """Return at once while closed; otherwise wait until the breaker closes, or until
        this caller is the one to probe a portal whose cooldown is over."""
        while self._state is not BreakerState.CLOSED:
            now = self._now()
            if self._state is BreakerState.OPEN:
                if now >= self._open_until:
                    self._probe_since = now
                    self._move(BreakerState.HALF_OPEN)
                    return
                deadline = self._open_until
            else:
                if now >= self._probe_since + self.probe_timeout:
                    log.warning("breaker probe lost, probing again", breaker=self.name)
                    self._probe_since = now
                    return
                deadline = self._probe_since + self.probe_timeout
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), deadline - now)

    def success(self) -> None:
        """A call went through: the portal answers."""
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._cooldown = self.base_cooldown
            self._move(BreakerState.CLOSED)
        # While open, a success can only be a call sent before the breaker opened: the
        # probe decides, not a straggler.

    def failure(self) -> None:
        """A call failed because of the portal (5xx, timeout, dropped connection)."""
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.threshold:
                self._open(failures=self._failures)
        elif self._state is BreakerState.HALF_OPEN:
            self._cooldown = min(self._cooldown * 2, self.max_cooldown)
            self._open(failures=1)
        # While open, failures of calls sent before it opened change nothing.

    def _open(self, *, failures: int) -> None:
        self._failures = 0
        self._open_until = self._now() + self._cooldown
        log.warning(
            "breaker opened: calls wait",
            breaker=self.name,
            failures=failures,
            cooldown=self._cooldown,
            probe_failed=self._state is BreakerState.HALF_OPEN,
        )
        self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if new is BreakerState.CLOSED:
            log.info("breaker closed: calls flow again", breaker=self.name)
        elif new is BreakerState.HALF_OPEN:
            log.info("breaker half-open: one probe call goes through", breaker=self.name)
        self._changed.set()
        self._changed = asyncio.Event()
        if self._on_change is not None:
            self._on_change(old, new)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()
