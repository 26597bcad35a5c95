"""The bus's Prometheus metrics, defined once per process (Prometheus forbids twins)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "bus_messages_total",
    "Messages a consumer finished with, by queue, unit and outcome.",
    ["queue", "unit", "outcome"],
)
HANDLING_SECONDS = Histogram(
    "bus_message_handling_seconds",
    "Time from delivery to the end of handling.",
    ["queue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

SYNC_UPDATES = Counter(
    "bus_sync_updates_total",
    "Dossier events the sync service finished with, by unit and outcome "
    "(applied, stale, superseded, rejected).",
    ["unit", "outcome"],
)
SYNC_LAG_SECONDS = Histogram(
    "bus_sync_lag_seconds",
    "From the event's occurrence to its application on the portal.",
    ["unit"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
