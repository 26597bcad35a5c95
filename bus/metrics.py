"""The bus's Prometheus metrics, defined once per process (Prometheus forbids twins)."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

Metric = TypeVar("Metric", bound=MetricWrapperBase)

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
PORTAL_BREAKER_OPEN = Gauge(
    "bus_portal_breaker_open",
    "1 while the circuit breaker in front of the portal is open or probing, else 0.",
)
PORTAL_BREAKER_OPENINGS = Counter(
    "bus_portal_breaker_openings_total", "Times the breaker in front of the portal opened."
)


_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def labelled(metric: Metric, *values: str) -> Metric:
    """`metric.labels(*values)`, looked up once per process.

    labels() takes a lock and builds a tuple on every call, a cost per message on hot paths;
    the label values (queues, units, outcomes) are few, so the children are kept for good.
    """
    child = _children.get((metric, values))
    if child is None:
        child = _children[metric, values] = metric.labels(*values)
    return child


# ---- connectors: each labelled by the unit it publishes for and its own name

CONNECTOR_RECORDS = Counter(
    "bus_connector_records_total",
    "Records a connector read from its local system, by unit, connector and outcome (stored:"
    " its event went to the outbox; skipped: that version was sent or refused already;"
    " rejected).",
    ["unit", "connector", "outcome"],
)
CONNECTOR_PUBLISHED = Counter(
    "bus_connector_events_published_total",
    "Events a connector published that the broker confirmed, by unit and connector.",
    ["unit", "connector"],
)
CONNECTOR_OUTBOX = Gauge(
    "bus_connector_outbox_events",
    "Events waiting in a connector's outbox for the broker's confirm.",
    ["unit", "connector"],
)
CONNECTOR_LAST_POLL = Gauge(
    "bus_connector_last_poll_timestamp_seconds",
    "When a connector last read its local system without error (Unix time); a push source's"
    " last accepted push.",
    ["unit", "connector"],
)
