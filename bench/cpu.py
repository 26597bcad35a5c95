"""Where the CPU goes: the processor time each process of a run spent, per event.

A throughput figure alone does not say whether the bus is slow or the machine is full. With
the broker, the simulator and the service sharing a few cores, the sum of their CPU per event
sets a ceiling no implementation on this machine can pass: `cores / total` events per second.

Read from /proc (Linux); on other systems, or for a broker on another host, a process's share
is reported as None.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def cpu_seconds(pid: int) -> float | None:
    """User and system time of a process and its threads so far; None if it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command's closing parenthesis: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def broker_pid(amqp_url: str) -> int | None:
    """The local RabbitMQ node's Erlang VM, if the broker runs on this machine."""
    if (urlsplit(amqp_url).hostname or "") not in _LOCAL_HOSTS:
        return None
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "beam.smp":
                return int(comm.parent.name)
        except OSError:
            continue
    return None


class CpuMeter:
    """The CPU the named processes spend while `measure()` is open."""

    def __init__(self, processes: Mapping[str, int | None]) -> None:
        self._processes = dict(processes)
        self.spent: dict[str, float | None] = {}

    @contextmanager
    def measure(self) -> Iterator[None]:
        before = {name: _seconds(pid) for name, pid in self._processes.items()}
        started = time.process_time()
        try:
            yield
        finally:
            for name, pid in self._processes.items():
                after = _seconds(pid)
                start = before[name]
                self.spent[name] = None if after is None or start is None else after - start
            self.spent["this process"] = time.process_time() - started

    def per_event(self, events: int, names: Mapping[str, str]) -> dict[str, Any]:
        """µs of CPU per event for each process, named as `names` maps them, with the total
        and the ceiling it sets on this machine's cores."""
        spent = {label: self.spent.get(name) for name, label in names.items()}
        micros = {k: None if v is None else round(v * 1e6 / events) for k, v in spent.items()}
        known = [v for v in micros.values() if v is not None]
        total = sum(known)
        cores = os.cpu_count() or 1
        return {
            **micros,
            "total": total,
            "ceiling_eps": round(cores * 1e6 / total) if total else None,
        }


def _seconds(pid: int | None) -> float | None:
    return None if pid is None else cpu_seconds(pid)


def rss_bytes(pid: int) -> int | None:
    """A process's resident set size now; None if it cannot be read (gone, not Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # the kernel counts in kB
    return None
