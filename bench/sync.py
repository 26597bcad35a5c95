"""Syncing: events drained from portal.sync into the portal simulator, against raw consuming.

The simulator runs as its own process (`bus portal-sim`, no added latency); the sync service
runs here with the production chain (signature check, contract decode, dedup, retries) and
the production wiring. Events are the sample lifecycles of `--dossiers` dossiers, interleaved
as busy local systems would send them, `--events` in all.

raw: pika consuming the same messages from portal.sync, acking each.
bus: the sync service drains the same messages; the clock stops when the last one is applied
     on the simulator (the consumer is idle: every handler returned after the portal's answer).
latency: with the service running, new dossiers are published at a steady `--rate` per
     second; p50/p99 are from each publish to the moment the simulator created the dossier.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from argparse import ArgumentParser, Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench.broker import amqp_url, raw_consume, scratch_vhost
from bench.cpu import CpuMeter, broker_pid
from bus.broker import Connection
from bus.declarations import apply_topology
from bus.logging import configure_logging
from bus.message import Outgoing
from bus.publisher import Publisher, event_message
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey
from bus.sync.runner import run_sync
from bus.topology import SYNC_QUEUE, topology
from connectors.sample.lifecycle import lifecycles
from schemas import DossierUpserted, Event

AGENCY = "000.00.01.H29"
SECRET = b"bench-signing-key-0123456789abcd"
CONNECTOR = "bench-sync"
SIGNER = Signer("bench-sync-key", "hmac-sha256", SECRET)
IDLE = 1.0  # seconds of silence that end a drain


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--dossiers", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="offered load for latency")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency run")
    parser.add_argument("--batch-size", type=int, default=100, help="most items per portal call")
    parser.add_argument("--concurrency", type=int, default=4, help="portal calls in flight")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _simulator(folder: Path) -> Iterator[tuple[str, int]]:
    """The simulator's address and process id."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bus",
            "portal-sim",
            "--port",
            str(port),
            "--db",
            str(folder / "portal.sqlite3"),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the portal simulator did not start") from None
                time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def _sim(url: str, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"{url}{path}", method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _interleaved(count: int, dossiers: int, seed: int, start: datetime) -> list[Event]:
    """Each dossier's events in order, dossiers taking turns, `count` in all.

    A sample lifecycle has about six events; when `count` asks for more per dossier, the
    dossiers get later edits too (an officer's note changed, re-sent as a new snapshot).
    """
    runs = lifecycles(AGENCY, dossiers, seed=seed, start=start, connector=CONNECTOR)
    missing = count - sum(map(len, runs))
    for index, run in enumerate(runs):
        edits = missing // dossiers + (1 if index < missing % dossiers else 0)
        for _ in range(max(0, edits)):
            run.append(_edited(run[-1]))
    mixed = [event for turn in zip_longest(*runs) for event in turn if event is not None]
    return mixed[:count]


def _edited(last: Event) -> Event:
    dossier = last.payload.dossier
    note = f"Cập nhật ghi chú lần {last.seq + 1}"
    return DossierUpserted(
        event_id=uuid.uuid4(),
        occurred_at=last.occurred_at + timedelta(minutes=5),
        source=last.source,
        dossier_code=last.dossier_code,
        seq=last.seq + 1,
        payload={"dossier": dossier.model_copy(update={"note": note})},
    )


def _settings(folder: Path, vhost_url: str, portal: str, name: str, options: Namespace) -> Settings:
    keys = KeyRing([VerifyKey(SIGNER.key_id, CONNECTOR, "hmac-sha256", SECRET)])
    return Settings(
        amqp_url=vhost_url,
        portal_url=portal,
        state_url=f"sqlite:///{folder / name}",
        verify_keys_file=keys.save(folder / "keys.json"),
        prefetch=1000,
        sync_batch_size=options.batch_size,
        sync_concurrency=options.concurrency,
        sync_rate=10_000,
        log_level="warning",
        log_format="json",
    )


async def _fill(connection: Connection, messages: list[Outgoing]) -> None:
    publisher = Publisher(connection)
    await connection.wait_open()
    for message in messages:
        await publisher.send(message)
    await publisher.flush()


async def _drain_with_sync(settings: Settings) -> float:
    started = time.perf_counter()
    await run_sync(settings, until_idle=IDLE)
    return time.perf_counter() - started - IDLE


async def _latency(
    settings: Settings, connection: Connection, portal: str, options: Namespace
) -> list[float]:
    count = int(options.rate * options.seconds)
    fresh = [
        run[0]
        for run in lifecycles(
            "000.00.02.H29", count, seed=7, start=datetime.now(UTC), connector=CONNECTOR
        )
    ]
    sync = asyncio.create_task(run_sync(settings, until_idle=None))
    publisher = Publisher(connection)
    await connection.wait_open()
    await asyncio.sleep(1.0)  # the service is up and consuming
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    for i, event in enumerate(fresh):
        await asyncio.sleep(max(0.0, started + i / options.rate - time.monotonic()))
        now = datetime.now(UTC)
        event = event.model_copy(update={"occurred_at": now})
        sent_at[str(event.dossier_code)] = now.timestamp()
        await publisher.send(event_message(event, SIGNER))
    await publisher.flush()
    deadline = time.monotonic() + 60
    created: dict[str, float] = {}
    while len(created) < len(sent_at) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        created = _created(portal, "H29")
    sync.cancel()
    await asyncio.gather(sync, return_exceptions=True)
    return sorted(
        (created[code] - sent) * 1000 for code, sent in sent_at.items() if code in created
    )


def _created(portal: str, unit: str) -> dict[str, float]:
    found: dict[str, float] = {}
    after = ""
    while True:
        page = _sim(portal, f"/_sim/dossiers?unit={unit}&after={after}&limit=1000")
        for record in page["dossiers"]:
            found[record["code"]] = datetime.fromisoformat(record["created_at"]).timestamp()
        if not page["next"]:
            return found
        after = page["next"]


async def _run(options: Namespace) -> dict[str, Any]:
    configure_logging(Settings(log_level="warning", log_format="json"))  # stderr, not stdout
    events = _interleaved(
        options.events, options.dossiers, seed=1, start=datetime(2025, 7, 1, tzinfo=UTC)
    )
    messages = [event_message(event, SIGNER) for event in events]
    del events
    # The benchmark's own data is not the service's heap: out of the collector's sight, as
    # the service puts what it loaded at start (bus/runtime.py), so that neither run pays for it.
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as scratch, _simulator(Path(scratch)) as (portal, sim):
        folder = Path(scratch)
        cpu = CpuMeter({"simulator": sim, "broker": broker_pid(amqp_url())})
        with scratch_vhost(amqp_url()) as url:
            connection = Connection(url, name="bench-sync")
            await connection.start(timeout=10)
            await apply_topology(connection, topology(Settings()))
            await _fill(connection, messages)
            raw = await raw_consume(url, SYNC_QUEUE, len(messages), prefetch=1000)
            await _fill(connection, messages)
            with cpu.measure():
                bus = await _drain_with_sync(
                    _settings(folder, url, portal, "state-drain.sqlite3", options)
                )
            applied = _sim(portal, "/_sim/stats")
            _sim(portal, "/_sim/reset", method="POST")
            latencies = await _latency(
                _settings(folder, url, portal, "state-latency.sqlite3", options),
                connection,
                portal,
                options,
            )
            await connection.close()
    raw_eps = len(messages) / raw
    bus_eps = len(messages) / bus
    return {
        "benchmark": "sync",
        "events": len(messages),
        "dossiers": options.dossiers,
        "raw_eps": round(raw_eps),
        "bus_eps": round(bus_eps),
        "ratio": round(bus_eps / raw_eps, 3),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "latency_rate": options.rate,
        "latency_events": len(latencies),
        "batch_size": options.batch_size,
        "concurrency": options.concurrency,
        "simulator": applied,
        "cores": os.cpu_count(),
        # The drain's CPU in µs per event; the service runs in this process.
        "cpu_us_per_event": cpu.per_event(
            len(messages), {"this process": "sync", "simulator": "simulator", "broker": "broker"}
        ),
    }


def run(options: Namespace) -> dict[str, Any]:
    return asyncio.run(_run(options))


def describe(result: dict[str, Any]) -> str:
    return (
        f"sync: bus {result['bus_eps']:,} events/s into the simulator vs raw consume "
        f"{result['raw_eps']:,}/s (ratio {result['ratio']}); publish-to-applied at "
        f"{result['latency_rate']}/s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"{result['events']:,} events of {result['dossiers']:,} dossiers, {result['cores']} cores; "
        f"CPU per event {result['cpu_us_per_event']}"
    )
