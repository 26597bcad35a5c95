"""The CPU accounting that benchmarks report next to their throughput."""

from __future__ import annotations

import os
import time

from bench.cpu import CpuMeter, broker_pid, cpu_seconds


def _busy(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_a_process_cpu_time_grows_while_it_works() -> None:
    before = cpu_seconds(os.getpid())
    _busy(0.1)
    after = cpu_seconds(os.getpid())
    assert before is not None
    assert after is not None
    assert after - before >= 0.05


def test_a_process_that_is_gone_has_no_cpu_time() -> None:
    assert cpu_seconds(2**22 + 1) is None


def test_a_broker_on_another_host_is_not_measured_here() -> None:
    assert broker_pid("amqp://guest:guest@rabbit.example.org:5672/%2F") is None


def test_per_event_figures_add_up_to_a_ceiling_on_this_machine() -> None:
    meter = CpuMeter({"absent": None})
    with meter.measure():
        _busy(0.2)
    figures = meter.per_event(1000, {"this process": "service", "absent": "broker"})
    assert figures["broker"] is None
    assert figures["service"] >= 150  # 0.2 s over 1,000 events is 200 µs each
    assert figures["total"] == figures["service"]
    assert figures["ceiling_eps"] == round((os.cpu_count() or 1) * 1e6 / figures["total"])
