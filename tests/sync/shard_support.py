"""Sync workers as processes, for the tests of the sharded sync: each `bus sync run --worker
I/W` a process of its own, as deployed, the portal simulator (`bus portal-sim`) another,
all sharing one SQLite state store; and the broker's view of who consumes which shard.

What a worker did is read from its own /metrics (messages handled per shard queue); which
consumer is active on a shard, from the management API, whose consumer list lags behind the
broker by up to its statistics interval (5 s by default).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families

from broker import management
from bus.management import vhost_of


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bus(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bus", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_http(url: str, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"{what} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not answer at {url} in {timeout} s") from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def simulator_process(folder: Path) -> Iterator[str]:
    """`bus portal-sim` on a free port and a SQLite file in `folder`: its URL."""
    port = free_port()
    process = _bus(
        "portal-sim", "--port", str(port), "--db", str(folder / "portal.sqlite3"),
        "--log-level", "warning",
        env=dict(os.environ), log=folder / "portal-sim.log",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz", process, "the portal simulator")
        yield url
    finally:
        _stop(process)


@dataclass
class Worker:
    number: int  # 1-based, as on the command line
    process: subprocess.Popen[bytes]
    metrics_url: str
    name: str  # its connection's name on the broker

    def handled(self) -> Counter[str]:
        """Messages this worker finished, any outcome, by queue (its /metrics)."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        found: Counter[str] = Counter()
        for family in text_string_to_metric_families(text):
            if family.name != "bus_messages":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["queue"]] += int(sample.value)
        return found

    def kill(self) -> None:
        """SIGKILL: no goodbye to the broker, the portal or the store."""
        self.process.kill()
        self.process.wait(timeout=10)


@dataclass
class Workers:
    workers: list[Worker] = field(default_factory=list)

    def __iter__(self) -> Iterator[Worker]:
        return iter(self.workers)

    def alive(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.process.poll() is None]


@contextlib.contextmanager
def worker_processes(count: int, env: dict[str, str], folder: Path) -> Iterator[Workers]:
    """`count` processes of `bus sync run --worker i/count`, with `env` (BUS_* settings),
    each with /metrics on a port of its own; stopped (SIGTERM) after the block."""
    workers = Workers()
    try:
        for number in range(1, count + 1):
            port = free_port()
            process = _bus(
                "sync", "run", "--worker", f"{number}/{count}", "--metrics-port", str(port),
                env={**os.environ, **env}, log=folder / f"worker-{number}.log",
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}/metrics"
            workers.workers.append(Worker(number, process, url, f"bus-sync-{number}/{count}"))
        for worker in workers:
            _wait_http(worker.metrics_url, worker.process, f"sync worker {worker.number}")
        yield workers
    finally:
        for worker in workers:
            _stop(worker.process)


@dataclass(frozen=True)
class ShardConsumers:
    """Who consumes a shard, by connection name, as the management API sees it."""

    active: str | None
    waiting: frozenset[str]


def shard_consumers(management_url: str, vhost_url: str) -> dict[str, ShardConsumers]:
    """Each queue's consumers: the connection name of the active one, and of those waiting.
    A consumer whose channel the API does not know yet is left out."""
    vhost = quote(vhost_of(vhost_url), safe="")
    names = {
        connection["name"]: connection.get("user_provided_name") or connection["name"]
        for connection in _get(management_url, f"/api/vhosts/{vhost}/connections")
    }
    active: dict[str, str] = {}
    waiting: dict[str, set[str]] = {}
    for consumer in _get(management_url, f"/api/consumers/{vhost}"):
        details = consumer.get("channel_details") or {}
        name = names.get(details.get("connection_name"))
        if name is None:
            continue
        queue = consumer["queue"]["name"]
        waiting.setdefault(queue, set())
        if consumer.get("active"):
            active[queue] = name
        else:
            waiting[queue].add(name)
    return {
        queue: ShardConsumers(active.get(queue), frozenset(names_waiting))
        for queue, names_waiting in waiting.items()
    }


def _get(management_url: str, path: str) -> Any:
    return management(management_url, "GET", path)
