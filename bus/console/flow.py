"""The live flow per unit: the services' /metrics scraped every few seconds, kept as a bounded
time series of rates (events per second received, synced, rejected, dead-lettered) and the
lag histogram from which p50 and p99 are estimated.

Each source is compared with its own previous scrape: a counter that went down means the
service restarted, and its new value is what happened since. The first scrape of a source is
its baseline for the rates (no burst of everything it did before the console started), but
its lag buckets count at once, so that the lag is known from the first look.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx
import structlog

from bus.console.scrape import MEASURES, Totals, parse, quantile

log = structlog.get_logger(__name__)

INTERVAL: Final = 2.0  # seconds between scrapes
POINTS: Final = 300  # kept: ten minutes at the default interval
LAG_WINDOW: Final = 60.0  # seconds of lag the quantiles are estimated over, when any


@dataclass
class Point:
    at: float  # epoch seconds
    rates: dict[tuple[str, str], float]  # (unit, measure) -> per second
    lag: dict[str, dict[float, float]]  # unit -> cumulative buckets since the console started


@dataclass
class Source:
    url: str
    last: Totals | None = None
    error: str | None = None
    scraped_at: float | None = None


class Flow:
    def __init__(
        self,
        urls: list[str],
        *,
        interval: float = INTERVAL,
        points: int = POINTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval = interval
        self.sources = [Source(url) for url in urls]
        self.points: deque[Point] = deque(maxlen=points)
        self._clock = clock
        self._lag: dict[str, dict[float, float]] = {}
        self._previous_at: float | None = None

    def record(self, scraped: dict[str, Totals], at: float | None = None) -> Point:
        """Add one round of scrapes (by source URL; a source that failed is absent)."""
        now = self._clock() if at is None else at
        deltas: dict[tuple[str, str], float] = {}
        for source in self.sources:
            totals = scraped.get(source.url)
            if totals is None:
                continue
            previous, source.last = source.last, totals
            for key, value in totals.counts.items():
                if previous is not None:
                    delta = _increase(previous.counts.get(key, 0.0), value)
                    deltas[key] = deltas.get(key, 0.0) + delta
            for unit, buckets in totals.buckets.items():
                before = previous.buckets.get(unit, {}) if previous is not None else {}
                into = self._lag.setdefault(unit, {})
                for bound, count in buckets.items():
                    into[bound] = into.get(bound, 0.0) + _increase(before.get(bound, 0.0), count)
        elapsed = now - self._previous_at if self._previous_at is not None else 0.0
        self._previous_at = now
        rates = {key: d / elapsed for key, d in deltas.items()} if elapsed > 0 else {}
        lag = {unit: dict(buckets) for unit, buckets in self._lag.items()}
        point = Point(now, rates, lag)
        self.points.append(point)
        return point

    def view(self, units: frozenset[str] | None) -> dict[str, Any]:
        """The series of the units `units` allows (None: all), as the page draws them."""
        points = list(self.points)
        seen = {unit for p in points for unit, _ in p.rates} | set(self._lag)
        shown = sorted(seen if units is None else seen & units)
        result: dict[str, Any] = {
            "interval": self.interval,
            "times": [p.at for p in points],
            "units": {unit: self._unit(unit, points) for unit in shown},
            "sources": [
                {
                    "url": s.url,
                    "ok": s.error is None and s.scraped_at is not None,
                    "error": s.error,
                    "scraped_at": s.scraped_at,
                }
                for s in self.sources
            ],
        }
        return result

    def _unit(self, unit: str, points: list[Point]) -> dict[str, Any]:
        series = {m: [round(p.rates.get((unit, m), 0.0), 3) for p in points] for m in MEASURES}
        return {**series, "lag": self._lag_quantiles(unit, points)}

    def _lag_quantiles(self, unit: str, points: list[Point]) -> dict[str, Any]:
        if not points:
            return {"p50": None, "p99": None, "window": None, "beyond": []}
        latest = points[-1].lag.get(unit, {})
        since = next((p for p in points if p.at >= points[-1].at - LAG_WINDOW), points[0])
        earlier = since.lag.get(unit, {})
        recent = {bound: count - earlier.get(bound, 0.0) for bound, count in latest.items()}
        buckets, window = (recent, f"last {LAG_WINDOW:.0f} s")
        if not recent.get(math.inf, 0.0):  # nothing in the window: everything seen
            buckets, window = latest, "since the console started"
        highest = max((bound for bound in buckets if not math.isinf(bound)), default=None)
        lag: dict[str, Any] = {"window": window, "beyond": []}
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            value = quantile(q, buckets)
            if value is not None and math.isinf(value):  # past the last bucket: "> highest"
                value = highest
                lag["beyond"].append(name)
            lag[name] = value
        return lag

    async def scrape(self, client: httpx.AsyncClient) -> Point:
        """Scrape every source once, at the same moment, and record the round."""

        async def one(source: Source) -> tuple[str, Totals | None]:
            try:
                answer = await client.get(source.url)
                answer.raise_for_status()
                totals = parse(answer.text)
            except (httpx.HTTPError, ValueError) as error:
                if source.error is None:
                    log.warning("metrics scrape failed", url=source.url, error=str(error))
                source.error = str(error) or type(error).__name__
                return source.url, None
            source.error, source.scraped_at = None, self._clock()
            return source.url, totals

        rounds = await asyncio.gather(*(one(source) for source in self.sources))
        return self.record({url: totals for url, totals in rounds if totals is not None})

    async def run(self) -> None:
        """Scrape every `interval` seconds until cancelled."""
        async with httpx.AsyncClient(timeout=self.interval) as client:
            while True:
                await self.scrape(client)
                await asyncio.sleep(self.interval)


def _increase(before: float, now: float) -> float:
    return now - before if now >= before else now  # went down: the service restarted
