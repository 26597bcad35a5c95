"""What one scrape of a service's /metrics says about each unit's flow, as running totals.

The console reads the services as Prometheus would, from their /metrics text: per unit, the
messages the sync consumer finished with (`bus_messages_total` of portal.sync or its shards), the
dossier updates the portal accepted (`bus_sync_updates_total`), the records connectors refused
at the source (`bus_connector_records_total`: into their reject stores), and the buckets of
the lag histogram (`bus_sync_lag_seconds`). What the portal refuses is dead-lettered, and
counted there. Everything is a cumulative count; `flow.py`
turns the difference between two scrapes into rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from bus.topology import is_sync_queue

# What the console charts, per unit, and the counter sample each comes from.
RECEIVED: Final = "received"  # every delivery of portal.sync the consumer finished with
SYNCED: Final = "synced"  # applied on the portal
REJECTED: Final = "rejected"  # refused by a connector: not the contract, never published
DEAD_LETTERED: Final = "dead_lettered"
MEASURES: Final = (RECEIVED, SYNCED, REJECTED, DEAD_LETTERED)


@dataclass
class Totals:
    """Cumulative counts of one service at one scrape."""

    counts: dict[tuple[str, str], float] = field(default_factory=dict)  # (unit, measure)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # unit -> le -> count

    def add(self, unit: str, measure: str, value: float) -> None:
        key = (unit, measure)
        self.counts[key] = self.counts.get(key, 0.0) + value


def parse(text: str) -> Totals:
    """The totals in a /metrics answer; families it does not know are ignored."""
    totals = Totals()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            unit = labels.get("unit")
            if not unit:
                continue
            if sample.name == "bus_messages_total" and is_sync_queue(labels.get("queue", "")):
                totals.add(unit, RECEIVED, sample.value)
                if labels.get("outcome") == "dead_lettered":
                    totals.add(unit, DEAD_LETTERED, sample.value)
            elif sample.name == "bus_sync_updates_total":
                if labels.get("outcome") == "applied":
                    totals.add(unit, SYNCED, sample.value)
            elif sample.name == "bus_connector_records_total":
                if labels.get("outcome") == "rejected":
                    totals.add(unit, REJECTED, sample.value)
            elif sample.name == "bus_sync_lag_seconds_bucket":
                bound = float(labels["le"])
                totals.buckets.setdefault(unit, {})[bound] = sample.value
    return totals


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a histogram's cumulative buckets, interpolated linearly inside the
    bucket it falls in, as Prometheus's histogram_quantile does; None without observations,
    and infinity when it lies beyond the highest finite bound."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, buckets[bounds[-1]] if bounds else 0.0)
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return math.inf
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
