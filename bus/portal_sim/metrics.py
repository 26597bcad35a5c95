"""The simulator's Prometheus metrics, read from its `Stats` when scraped.

Each simulator has a registry of its own rather than the process's: tests run several in one
process, and the demo runs one beside the sync service, whose `/metrics` must not count the
simulator's calls. A reset (`POST /_sim/reset`) zeroes the counts, as a restart would, and
Prometheus's `rate()` takes it as one.

- `bus_portal_sim_calls_total{endpoint, service, code}`: calls by endpoint (auth, integration,
  share), service (DongBoHoSoMC, CapNhatTienDoHoSoMC, TraCuuHoSo; empty when none or unread)
  and code: the portal's error_code for the call (0, 400, 401), or the HTTP status of an
  injected fault (429, 5xx), or "reset" for a connection cut before any answer;
- `bus_portal_sim_items_total{service, code}`: items judged, by the item's error_code;
- `bus_portal_sim_faults_total{kind}`: faults injected;
- `bus_portal_sim_sessions`: sessions alive now.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.portal_sim.simulator import Simulator


class SimulatorCollector(Collector):
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def collect(self) -> Iterator[Metric]:
        stats = self.sim.stats  # read on the simulator's own loop: no call changes it meanwhile
        calls = CounterMetricFamily(
            "bus_portal_sim_calls",
            "Calls to the simulated portal, by endpoint, service and answer code.",
            labels=["endpoint", "service", "code"],
        )
        for (endpoint, service, code), count in sorted(stats.answers.items()):
            calls.add_metric([endpoint, service, code], count, created=stats.started_at)
        items = CounterMetricFamily(
            "bus_portal_sim_items",
            "Items of /integration calls judged, by service and the item's error_code.",
            labels=["service", "code"],
        )
        for (service, item_code), count in sorted(stats.items.items()):
            items.add_metric([service, str(item_code)], count, created=stats.started_at)
        faults = CounterMetricFamily(
            "bus_portal_sim_faults", "Faults injected, by kind.", labels=["kind"]
        )
        for kind, count in sorted(stats.faults.items()):
            faults.add_metric([kind], count, created=stats.started_at)
        yield from (calls, items, faults)
        try:
            live = self.sim.sessions.live()
        except RuntimeError:  # not started, or stopped: no sessions to speak of
            return
        yield GaugeMetricFamily("bus_portal_sim_sessions", "Sessions alive now.", value=live)


def simulator_registry(sim: Simulator) -> CollectorRegistry:
    """The simulator's metrics, with the process's own (CPU, memory, collector, Python)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SimulatorCollector(sim))
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry
