"""Counters since the simulator started (or was reset), for `GET /_sim/stats`.

In memory: they describe this run, its calls and the faults injected into them. What the
portal holds, and the counts per unit, are in the store and survive a restart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started_at = time.time()
        self.calls: Counter[str] = Counter()  # by endpoint: auth, integration, share
        # by endpoint, service ("" if none or not read) and code: the portal's error_code of
        # the call (0, 400, 401) or an injected fault's HTTP status (429, 5xx), or "reset"
        self.answers: Counter[tuple[str, str, str]] = Counter()
        self.refused: Counter[str] = Counter()  # whole calls, by error_code (400, 401)
        self.items: Counter[tuple[str, int]] = Counter()  # by service and item error_code
        self.faults: Counter[str] = Counter()  # by kind

    def call(self, endpoint: str) -> None:
        self.calls[endpoint] += 1

    def answered(self, endpoint: str, service: str, code: int | str) -> None:
        self.answers[endpoint, service, str(code)] += 1

    def judged(self, service: str, codes: Iterable[int]) -> None:
        self.items.update((service, code) for code in codes)

    def fault(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def snapshot(self, sessions: int) -> dict[str, Any]:
        by_service: dict[str, dict[str, int]] = {}
        for (service, code), n in sorted(self.items.items()):
            by_service.setdefault(service, {})[str(code)] = n
        return {
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "calls": {**self.calls, "total": self.calls.total()},
            "calls_refused": {str(code): n for code, n in sorted(self.refused.items())},
            "items": {
                "applied": sum(n for (_, code), n in self.items.items() if code == 0),
                "rejected": sum(n for (_, code), n in self.items.items() if code != 0),
                # {"DongBoHoSoMC": {"0": 99, "1": 1}}: counts per item error_code
                "by_service": by_service,
            },
            "faults": {**self.faults, "total": self.faults.total()},
            "sessions_live": sessions,
        }
