"""Login throttling: a few wrong passwords a minute per account and per address, then wait.

Guessing passwords through the login form must be slow even though scrypt already makes each
try cost: the failures are counted per account name and per client address over a sliding
window, and while either is over the limit the form refuses to even check the password.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

MAX_FAILURES: Final = 5
WINDOW: Final = 60.0  # seconds


class LoginThrottle:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, *keys: str) -> float:
        """Seconds until a login may be tried for all of `keys` again (0: now)."""
        now = self._clock()
        waits = [0.0]
        for key in keys:
            failures = self._recent(key, now)
            if len(failures) >= self.max_failures:
                waits.append(failures[0] + self.window - now)
        return max(waits)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            self._recent(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures and len(self._failures) > 10_000:  # bounded however many guessers
            self._failures.clear()
            failures = self._failures.setdefault(key, deque())
        return failures
