"""Sharded sync: events drained from `--shards` shard queues by 1, 2, 3… sync workers.

The same `--events` events (the sample lifecycles of `--dossiers` dossiers, interleaved) are
published through dossier.events for each worker count; the consistent-hash exchange spreads
them over the shards by dossier code. Each worker is a `bus sync run --worker I/W` process,
all sharing one state store, writing to one portal simulator process.

raw: pika consuming the same messages from every shard queue at once, acking each.
bus: seconds from starting the workers until the last one found its shards empty, less
     the idle time it waited to be sure (process start-up is counted: it is part of
     adding a worker).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from argparse import ArgumentParser, Namespace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.broker import amqp_url, raw_consume, scratch_vhost
from bench.sync import CONNECTOR, SIGNER, _fill, _interleaved, _sim, _simulator
from bus import management
from bus.broker import Connection
from bus.declarations import apply_topology
from bus.publisher import event_message
from bus.settings import Settings
from bus.signing import KeyRing
from bus.topology import sync_queues, topology

IDLE = 2.0  # seconds of empty shards that end a worker


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--workers", default="1,2,3", help="comma list of worker counts")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--dossiers", type=int, default=5_000)


def run(options: Namespace) -> dict[str, Any]:
    return asyncio.run(_run(options))


async def _run(options: Namespace) -> dict[str, Any]:
    counts = [int(part) for part in options.workers.split(",") if part.strip()]
    events = _interleaved(
        options.events, options.dossiers, seed=1, start=datetime(2025, 7, 1, tzinfo=UTC)
    )
    messages = [event_message(event, SIGNER) for event in events]
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        _simulator(Path(scratch)) as (portal, _pid),
        scratch_vhost(amqp_url()) as url,
    ):
        folder = Path(scratch)
        settings = Settings(amqp_url=url, sync_shards=options.shards)
        keys = KeyRing([SIGNER.verify_key(CONNECTOR)]).save(folder / "keys.json")
        connection = Connection(url, name="bench-scale")
        await connection.start(timeout=10)
        await apply_topology(connection, topology(settings))
        await _fill(connection, messages)
        spread = _depths(url, sync_queues(settings), len(messages))
        raw = max(
            await asyncio.gather(
                *(raw_consume(url, queue, depth, 1000) for queue, depth in spread.items() if depth)
            )
        )
        for workers in counts:
            await _fill(connection, messages)
            _sim(portal, "/_sim/reset", method="POST")
            state = folder / f"state-{workers}.sqlite3"
            seconds = _drain(workers, options.shards, url, portal, state, keys)
            held, digest = _holdings(portal)
            if runs and digest != runs[0]["portal_digest"]:
                raise RuntimeError(
                    f"the portal holds other dossiers after {workers} workers ({held}) than"
                    f" after {runs[0]['workers']} ({runs[0]['portal_dossiers']})"
                )
            eps = len(messages) / seconds
            runs.append(
                {
                    "workers": workers,
                    "bus_eps": round(eps),
                    "per_worker_eps": round(eps / workers),
                    "ratio": round(eps / (len(messages) / raw), 3),
                    "seconds": round(seconds, 2),
                    "portal_dossiers": held,
                    "portal_digest": digest,
                }
            )
        await connection.close()
    return {
        "benchmark": "scale",
        "events": len(messages),
        "dossiers": options.dossiers,
        "shards": options.shards,
        "shard_depths": list(spread.values()),
        "raw_eps": round(len(messages) / raw),
        "runs": runs,
        "cores": os.cpu_count(),
    }


def _depths(url: str, queues: tuple[str, ...], expected: int) -> dict[str, int]:
    """Messages in each shard queue, once the broker's counts hold all `expected`."""
    api = management.Management(management.management_url_for(url))
    vhost = management.vhost_of(url)
    deadline = time.monotonic() + 30
    while True:
        found = {queue["name"]: int(queue.get("messages", 0)) for queue in api.queues(vhost)}
        depths = {name: found.get(name, 0) for name in queues}
        if sum(depths.values()) >= expected or time.monotonic() > deadline:
            return depths
        time.sleep(1)


def _holdings(portal: str) -> tuple[int, str]:
    """How many dossiers the portal holds, and a digest of each one's record and steps:
    equal digests, equal final states, however many workers wrote them."""
    digest, count, after = hashlib.sha256(), 0, ""
    while True:
        page = _sim(portal, f"/_sim/dossiers?after={after}&limit=1000")
        for record in page["dossiers"]:
            digest.update(orjson.dumps([record["code"], record["item"], record["progress"]]))
            count += 1
        if not page["next"]:
            return count, digest.hexdigest()
        after = page["next"]


def _drain(workers: int, shards: int, url: str, portal: str, state: Path, keys: Path) -> float:
    """Seconds for `workers` sync processes to empty the shards."""
    environment = {
        **os.environ,
        "BUS_AMQP_URL": url,
        "BUS_PORTAL_URL": portal,
        "BUS_STATE_URL": f"sqlite:///{state}",
        "BUS_VERIFY_KEYS_FILE": str(keys),
        "BUS_SYNC_SHARDS": str(shards),
        "BUS_SYNC_RATE": "10000",
        "BUS_PREFETCH": "1000",
        "BUS_METRICS_PORT": "0",
        "BUS_LOG_LEVEL": "warning",
    }
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bus", "sync", "run", "--worker", f"{index}/{workers}",
             "--until-idle", str(IDLE)],
            env=environment,
            stdout=subprocess.DEVNULL,
        )
        for index in range(1, workers + 1)
    ]  # fmt: skip
    try:
        for process in processes:
            if process.wait(timeout=900) != 0:
                raise RuntimeError(f"a sync worker exited with {process.returncode}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return time.perf_counter() - started - IDLE


def describe(result: dict[str, Any]) -> str:
    runs = "; ".join(
        f"{run['workers']} worker(s): {run['bus_eps']:,} events/s ({run['per_worker_eps']:,} "
        f"each, ratio {run['ratio']})"
        for run in result["runs"]
    )
    return (
        f"scale: {result['events']:,} events on {result['shards']} shards, raw consume "
        f"{result['raw_eps']:,}/s; {runs}; {result['cores']} cores"
    )
