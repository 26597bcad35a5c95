"""A token bucket for calls to the portal, whose rate follows what the portal tolerates.

The rate adapts as TCP's congestion window does (AIMD): a 429 pauses every caller for its
Retry-After and halves the rate, success adds back a fixed step per second up to the
configured maximum. Halving finds a rate the portal tolerates in a few answers; climbing
slowly keeps the sender from bouncing straight back into the limit.

Time is the event loop's clock, so tests can run the bucket in virtual time.
"""

from __future__ import annotations

import asyncio

# 0.1 s at 10 calls/s must make a whole token, though in floats it makes 0.9999999999999998.
_ROUNDING = 1e-9


class TokenBucket:
    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        min_rate: float = 1.0,
        step: float | None = None,
    ) -> None:
        """`rate`: the most calls per second, and the rate to start at. `burst`: calls that
        may go out at once after a quiet spell (1 spaces every call evenly). `min_rate`: how
        low 429s can push the rate. `step`: calls per second regained for each second's worth
        of successful calls; by default a tenth of `rate`, so ten seconds of success at full
        pace climb from the floor back to the top."""
        if rate <= 0 or min_rate <= 0 or burst < 1:
            raise ValueError("rate and min_rate must be positive, burst at least 1")
        self.max_rate = rate
        self.min_rate = min(min_rate, rate)
        self.burst = burst
        self.step = rate / 10 if step is None else step
        self._rate = rate
        self._tokens = burst
        self._last: float | None = None  # when _tokens was last brought up to date
        self._paused_until = float("-inf")
        self._credit = 0.0  # seconds' worth of successes since the rate last rose
        self._lock = asyncio.Lock()  # fair: callers get their tokens in arrival order

    @property
    def rate(self) -> float:
        """Calls per second allowed now."""
        return self._rate

    @property
    def paused(self) -> bool:
        return self._now() < self._paused_until

    async def acquire(self) -> None:
        """Wait for a token: until any pause is over and the rate allows one more call."""
        async with self._lock:
            while True:
                now = self._now()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1 - _ROUNDING:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                # Loop rather than trust the wait: a 429 may pause or slow us meanwhile.
                await asyncio.sleep((1 - self._tokens) / self._rate)

    def slow_down(self, retry_after: float) -> None:
        """The portal answered 429: pause every caller for `retry_after` seconds and halve
        the rate. 429s that arrive during the pause answer calls sent before it, so they
        extend the pause but do not halve again."""
        now = self._now()
        self._refill(now)
        if now >= self._paused_until:
            self._rate = max(self.min_rate, self._rate / 2)
        # At least one interval at the new rate, so a Retry-After of 0 still counts once.
        until = now + max(retry_after, 1 / self._rate)
        self._paused_until = max(self._paused_until, until)
        # One call may go as the pause ends; the bucket refills from there.
        self._tokens, self._last = 1.0, self._paused_until
        self._credit = 0.0

    def speed_up(self) -> None:
        """A call succeeded. Every second's worth of successes at the current rate (as many
        as the rate) adds `step` calls per second, so a sender at full pace climbs by `step`
        every second, as TCP adds one segment per round trip."""
        if self._rate >= self.max_rate:
            return
        self._credit += 1 / self._rate
        if self._credit >= 1 - _ROUNDING:
            self._refill(self._now())
            self._rate = min(self.max_rate, self._rate + self.step)
            self._credit = 0.0

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self._rate)
        self._last = max(now, self._last) if self._last is not None else now

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()
