"""deploy/: the Prometheus scrape config scrapes each service where it serves by default, and
the Grafana dashboard asks only for metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import bus.metrics  # noqa: F401  (defines the bus's metrics in the process registry)
from bus.commands.portal_sim import portal_sim
from bus.portal_sim import InProcessServer, Options
from bus.probes import CONNECTOR_METRICS_PORT, SYNC_METRICS_PORT
from bus.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}


def scrape_jobs() -> dict[str, Any]:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    return {job["job_name"]: job for job in config["scrape_configs"]}


def ports(job: dict[str, Any]) -> set[int]:
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    return {int(target.rpartition(":")[2]) for target in targets}


def exported(text: str) -> set[str]:
    """The sample names an exposition's families have, or would have once labelled."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, [""])}
    return names


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads: what is left once strings, label matchers,
    ranges and grouping clauses are gone, and that is not a function called."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    words = re.finditer(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr)
    return {w.group() for w in words if w.group() not in {"and", "or", "unless", "bool", "offset"}}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dossier-bus.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        # label_values(metric, label): only its metric is one
        if found := re.match(r"label_values\((\w+),", variable.get("definition", "")):
            exprs.append(found.group(1))
    return exprs


def test_the_scrape_config_scrapes_every_service_on_its_documented_default_port() -> None:
    jobs = scrape_jobs()
    simulator_port = next(p.default for p in portal_sim.params if p.name == "port")
    assert {name: ports(job) for name, job in jobs.items()} == {
        "sync": {SYNC_METRICS_PORT},
        "connectors": {CONNECTOR_METRICS_PORT},
        "portal-sim": {simulator_port},
        "console": {Settings.model_fields["console_port"].default},
        "rabbitmq": {15692},
    }
    assert jobs["rabbitmq"]["metrics_path"] == "/metrics/per-object"  # queues by name


def test_the_metric_name_reader_finds_metrics_and_nothing_else() -> None:
    expr = 'histogram_quantile(0.99, sum by (unit, le) (rate(lag_seconds_bucket{unit=~"H.*"}[5m])))'
    assert metric_names(expr) == {"lag_seconds_bucket"}
    assert metric_names("time() - max by (unit) (last_seen) or up") == {"last_seen", "up"}


def test_every_metric_the_dashboard_asks_for_is_exported_by_a_service_or_the_broker(
    tmp_path: Path,
) -> None:
    with InProcessServer(Options(db=tmp_path / "portal.sqlite3")) as url:
        simulator = httpx.get(f"{url}/metrics").raise_for_status().text
    known = exported(generate_latest(REGISTRY).decode()) | exported(simulator)
    used = set().union(*map(metric_names, dashboard_exprs()))
    assert {name for name in used if name.startswith("bus_")} >= {
        "bus_sync_lag_seconds_bucket",
        "bus_connector_outbox_events",
        "bus_portal_sim_calls_total",
    }
    assert sorted(used - known - {n for n in used if n.startswith("rabbitmq_")}) == []
