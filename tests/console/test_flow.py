"""The flow per unit, from the services' /metrics text: rates between scrapes, restarts,
and lag quantiles from histogram buckets."""

from __future__ import annotations

import math

import pytest

from bus.console.flow import Flow
from bus.console.scrape import parse, quantile


def metrics(applied: int, dead: int, lag: dict[str, int]) -> str:
    lines = [
        "# TYPE bus_messages_total counter",
        f'bus_messages_total{{queue="portal.sync",unit="H29",outcome="processed"}} {applied}',
        f'bus_messages_total{{queue="portal.sync",unit="H29",outcome="dead_lettered"}} {dead}',
        "# TYPE bus_sync_updates_total counter",
        f'bus_sync_updates_total{{unit="H29",outcome="applied"}} {applied}',
        "# TYPE bus_sync_lag_seconds histogram",
    ]
    lines += [f'bus_sync_lag_seconds_bucket{{unit="H29",le="{le}"}} {n}' for le, n in lag.items()]
    return "\n".join(lines) + "\n"


def test_a_scrape_reads_each_units_totals_and_lag_buckets() -> None:
    totals = parse(metrics(10, 2, {"1.0": 3, "+Inf": 12}))
    assert totals.counts == {
        ("H29", "received"): 12,
        ("H29", "dead_lettered"): 2,
        ("H29", "synced"): 10,
    }
    assert totals.buckets == {"H29": {1.0: 3, math.inf: 12}}


def test_the_records_a_connector_refused_are_its_units_rejected_ones() -> None:
    text = (
        "# TYPE bus_connector_records_total counter\n"
        'bus_connector_records_total{unit="G01",connector="g01-dvc",outcome="stored"} 40\n'
        'bus_connector_records_total{unit="G01",connector="g01-dvc",outcome="rejected"} 3\n'
        "# TYPE bus_sync_updates_total counter\n"
        'bus_sync_updates_total{unit="G01",outcome="rejected"} 1\n'
    )
    assert parse(text).counts == {("G01", "rejected"): 3}


def test_rates_are_the_increase_between_two_scrapes_per_second() -> None:
    flow = Flow(["a"])
    flow.record({"a": parse(metrics(100, 0, {"+Inf": 0}))}, at=0)
    point = flow.record({"a": parse(metrics(120, 4, {"+Inf": 0}))}, at=2)
    assert point.rates[("H29", "synced")] == 10
    assert point.rates[("H29", "dead_lettered")] == 2
    assert point.rates[("H29", "received")] == 12


def test_a_counter_that_went_down_counts_from_zero_as_a_restarted_service_does() -> None:
    flow = Flow(["a"])
    flow.record({"a": parse(metrics(100, 0, {"+Inf": 0}))}, at=0)
    point = flow.record({"a": parse(metrics(6, 0, {"+Inf": 0}))}, at=2)
    assert point.rates[("H29", "synced")] == 3


def test_the_view_shows_only_the_operators_units() -> None:
    flow = Flow(["a"])
    text = metrics(1, 0, {"+Inf": 0}).replace('"H29"', '"G01"', 2) + metrics(1, 0, {"+Inf": 0})
    flow.record({"a": parse(text)}, at=0)
    flow.record({"a": parse(text)}, at=2)
    assert set(flow.view(None)["units"]) == {"G01", "H29"}
    assert set(flow.view(frozenset({"H29"}))["units"]) == {"H29"}


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 0.625), (0.25, 0.3125), (0.85, 1.5), (0.99, math.inf)],
)
def test_quantiles_interpolate_inside_their_bucket(q: float, expected: float) -> None:
    buckets = {1.0: 80.0, 2.0: 90.0, math.inf: 100.0}
    assert quantile(q, buckets) == pytest.approx(expected)


def test_a_histogram_without_observations_has_no_quantile() -> None:
    assert quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None


def test_the_lag_beyond_the_last_bucket_is_shown_as_beyond_it() -> None:
    flow = Flow(["a"])
    flow.record({"a": parse(metrics(1, 0, {"3600.0": 0, "+Inf": 5}))}, at=0)
    lag = flow.view(None)["units"]["H29"]["lag"]
    assert lag["p50"] == 3600
    assert lag["beyond"] == ["p50", "p99"]
