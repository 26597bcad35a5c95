"""What every `/metrics` of the bus must be: text Prometheus parses, under names that follow
its conventions (https://prometheus.io/docs/practices/naming/). `naming_problems` is the
checker; the other test files call it on each service's `/metrics` as it runs."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import bus.metrics  # noqa: F401  (defines the bus's metrics in the process registry)

NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # colons are for recording rules only
# Units that are not base units, and units spelled out where an abbreviation is the rule.
NOT_BASE_UNITS = re.compile(
    r"_(ms|msec|millis|milliseconds|us|usec|microseconds|ns|nanoseconds|minutes|hours|days"
    r"|kb|kib|kilobytes|mb|mib|megabytes|gb|gigabytes|percent)(_|$)"
)
TIME_WORDS = re.compile(r"(duration|latency|lag|time|delay|wait|elapsed|age)")


def naming_problems(text: str) -> list[str]:
    """Every way the exposition `text` breaks the conventions (empty: none). Raises if
    Prometheus's own parser cannot read it (which also checks the label names)."""
    families = list(text_string_to_metric_families(text))
    problems = _counters_without_total(text)
    for family in families:
        name = family.name
        if not NAME.fullmatch(name):
            problems.append(f"{name}: not a valid metric name")
        if NOT_BASE_UNITS.search(name):
            problems.append(f"{name}: not in base units (seconds, bytes)")
        if family.type != "counter" and name.endswith("_total"):
            problems.append(f"{name}: a {family.type} named as a counter (_total)")
        timed = family.type in {"histogram", "summary"} and TIME_WORDS.search(name)
        if timed and not name.endswith("_seconds"):
            problems.append(f"{name}: a time {family.type} must be in _seconds")
        if "timestamp" in name and not name.endswith("_timestamp_seconds"):
            problems.append(f"{name}: a timestamp is *_timestamp_seconds")
    return problems


def _counters_without_total(text: str) -> list[str]:
    # Read in the raw text: the parser quietly renames a counter's sample `x` to `x_total`.
    counters = {
        line.split()[2].removesuffix("_total")
        for line in text.splitlines()
        if line.startswith("# TYPE ") and line.split()[3:] == ["counter"]
    }
    samples = {re.split(r"[{\s]", line, maxsplit=1)[0] for line in text.splitlines()}
    return [f"{name}: a counter's sample must end in _total" for name in sorted(counters & samples)]


def test_the_process_registry_with_every_bus_metric_follows_the_conventions() -> None:
    assert naming_problems(generate_latest(REGISTRY).decode()) == []


@pytest.mark.parametrize(
    ("exposition", "problem"),
    [
        ("# TYPE calls counter\ncalls 3\n", "calls: a counter's sample must end in _total"),
        ("# TYPE wait_ms gauge\nwait_ms 3\n", "wait_ms: not in base units (seconds, bytes)"),
        ("# TYPE size_kb gauge\nsize_kb 3\n", "size_kb: not in base units (seconds, bytes)"),
        (
            '# TYPE lag histogram\nlag_bucket{le="+Inf"} 1\nlag_count 1\nlag_sum 2\n',
            "lag: a time histogram must be in _seconds",
        ),
        (
            "# TYPE queued_total gauge\nqueued_total 3\n",
            "queued_total: a gauge named as a counter (_total)",
        ),
        (
            "# TYPE last_poll_timestamp gauge\nlast_poll_timestamp 3\n",
            "last_poll_timestamp: a timestamp is *_timestamp_seconds",
        ),
    ],
)
def test_the_checker_names_each_broken_convention(exposition: str, problem: str) -> None:
    assert naming_problems(exposition) == [problem]


def test_the_checker_refuses_text_prometheus_cannot_parse() -> None:
    with pytest.raises(ValueError, match="Invalid"):
        naming_problems("# TYPE up gauge\nup{unit=H29} one\n")
