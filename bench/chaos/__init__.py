"""The fault campaign: the whole pipeline under faults, then proof that nothing was lost.

Two sample local systems (G01 as an SQL table, H31 as file drops) write `--events` changes;
their connectors (`bus connector run`), the sync service (`bus sync run`) and the portal
simulator (`bus portal-sim`) run as child processes; RabbitMQ is the local node, in a scratch
virtual host. While the events flow, two lanes of faults run side by side, each fault of
`--faults` `--rounds` times, in an order drawn from `--seed`:

  broker lane: broker_restart (stop_app, start_app), connections_closed (every connection of
               the vhost, by force), disk_alarm (publishers blocked for a while), kill_sync and
               kill_connector (SIGKILL at a random moment, then restarted);
  portal lane: portal_5xx, portal_429 (with Retry-After), portal_stall (beyond the client's
               timeout), session_expiry, portal_reset (connections cut mid-answer).

Then the pipeline settles (sources done, outboxes empty, portal.sync and its retry queues
empty, every dossier's final state on the portal) and `bench.checker` compares each dossier's
state and history on the portal with the sources' truth. The broker is restored whatever
happens, Ctrl-C and SIGTERM included. `--minutes M` is a soak instead: the capacity measured
first, then a steady load of half of it for M minutes, faults spread over them, each process's
RSS read every 30 s and its growth judged from the end of the warm-up (`_warm_up`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import sys
import time
from argparse import ArgumentParser, Namespace
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory, mkdtemp
from typing import Any, Final

from bench.broker import amqp_url, scratch_vhost
from bench.chaos.pipeline import Pipeline
from bench.chaos.schedule import FAULTS, lanes
from bench.checker import check
from bench.cpu import broker_pid, rss_bytes
from bench.faults import BrokerFaults
from bus.settings import Settings

DEFAULT_ROUNDS_PER: Final = 5000  # events per round of faults by default: 50,000 → 10 rounds
SETTLE_TIMEOUT: Final = 300.0
RSS_EVERY: Final = 30.0  # seconds between two readings of each process's RSS in a soak
WARM_UP_SHARE: Final = 6  # a soak's warm-up is at least its first sixth

Reading = dict[str, tuple[int | None, int | None]]  # per process: (pid, RSS bytes)


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=5000, help="changes the sources write")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"comma list of: {', '.join(FAULTS)}"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="times each fault is injected (default: "
        f"events / {DEFAULT_ROUNDS_PER}, at least 2)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="makes the schedule repeatable")
    parser.add_argument("--minutes", type=float, default=None, help="soak for this long")
    parser.add_argument("--settle-timeout", type=float, default=SETTLE_TIMEOUT)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def run(options: Namespace) -> dict[str, Any]:
    faults = [name.strip() for name in options.faults.split(",") if name.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise SystemExit(f"unknown faults: {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    rounds = options.rounds or max(2, options.events // DEFAULT_ROUNDS_PER)
    # A campaign stopped from outside (a CI timeout, `kill`) ends as Ctrl-C does: its
    # processes stopped, the broker restored, its virtual host deleted.
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _run(options, faults, rounds)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(options: Namespace, faults: list[str], rounds: int) -> dict[str, Any]:
    with ExitStack() as stack:
        folder = _work_directory(stack, options.keep)
        url = amqp_url()
        broker = BrokerFaults(_management_url(url), url)
        broker.restore()  # a campaign killed earlier may have left the app stopped
        try:
            vhost = stack.enter_context(scratch_vhost(url))
            broker = BrokerFaults(_management_url(url), vhost)
            return asyncio.run(_campaign(options, faults, rounds, folder, vhost, broker))
        finally:
            gc.unfreeze()
            broker.restore()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


async def _campaign(
    options: Namespace, faults: list[str], rounds: int, folder: Path, vhost: str,
    broker: BrokerFaults,
) -> dict[str, Any]:  # fmt: skip
    started = time.monotonic()
    rng = random.Random(options.seed)
    events, capacity = options.events, None
    if options.minutes is not None:
        # The sources must hold as many changes as the soak writes, at half the capacity
        # measured on a pipeline of its own, so that the load lasts the whole soak.
        probe_folder = folder / "capacity"
        probe_folder.mkdir()
        async with Pipeline.running(probe_folder, vhost, broker, 3000, options.seed) as probe:
            capacity = await probe.measure_capacity()
        events = round(capacity / 2 * options.minutes * 60)
    async with Pipeline.running(folder, vhost, broker, events, options.seed) as pipeline:
        # The sources' events (a soak's million) live until the end: out of the collector's
        # sight, a full collection no longer stops the writer for seconds.
        gc.freeze()
        rss_start = _rss(pipeline)
        if capacity is None:
            schedule = lanes(faults, rounds, rng)
            flow = max(schedule.length, events / pipeline.max_rate)
        else:
            flow = options.minutes * 60
            schedule = lanes(faults, rounds, rng, span=flow)
        rate = events / flow
        samples: list[Reading] = []
        sampling = asyncio.create_task(_sample_rss(pipeline, samples))
        try:
            await pipeline.flow(schedule, rate, rng)
        finally:
            sampling.cancel()
        rss_end = _rss(pipeline)
        settle = await pipeline.settle(options.settle_timeout)
        rss_settled = _rss(pipeline)
        soak = None
        if capacity is not None:
            warm_up = _warm_up(options.minutes, sum(site.dossiers for site in pipeline.sites))
            soak = _soak(options.minutes, warm_up, capacity, samples, rss_start, rss_end,
                         rss_settled)  # fmt: skip
            # Said at once: the check that follows reads every dossier back, which is long.
            print(json.dumps({"soak": soak}), file=sys.stderr, flush=True)
        dead, dead_reasons = await pipeline.dead_letters()
        verdict = check(pipeline.truth(), await pipeline.held(), dead)
        pipeline_events, pipeline_restarts = pipeline.written, dict(pipeline.restarts)
    result: dict[str, Any] = {
        "benchmark": "chaos",
        "events": pipeline_events,
        "faults": schedule.done,
        **verdict.counts(),
        "reapplied_identical": verdict.reapplied_identical,
        "examples": verdict.examples,
        "dead_letter_reasons": dead_reasons,
        "settled": settle,
        "restarted_unasked": pipeline_restarts,
        "schedule": {"seed": options.seed, "rounds": rounds, **schedule.summary()},
        "rate_eps": round(rate, 1),
        "duration_s": round(time.monotonic() - started, 1),
        "cores": os.cpu_count(),
    }
    if soak is not None:
        result["soak"] = soak
    return result


def _warm_up(minutes: float, dossiers: int) -> float:
    """Minutes until the bounded caches are full, from which on growth is judged. The
    largest, the sync service's per-dossier cache, fills as new dossiers come: the sources
    open theirs evenly over the soak. Half as long again, for the ones that fill with it
    (dedup ids, spelled dates, SQLite's pages) and for the allocator to settle."""
    fill = minutes * min(1.0, Settings().sync_cache_dossiers / max(dossiers, 1))
    return min(minutes / 2, max(minutes / WARM_UP_SHARE, 1.5 * fill))


def _soak(
    minutes: float, warm_up: float, capacity: float, samples: list[Reading], start: Reading,
    end: Reading, settled: Reading,
) -> dict[str, Any]:  # fmt: skip
    warm = samples[min(len(samples) - 1, round(warm_up * 60 / RSS_EVERY))] if samples else start
    return {
        "minutes": minutes,
        "capacity_eps": round(capacity, 1),
        "warm_up_minutes": round(warm_up, 1),
        "rss_mb": _rss_report(start, warm, end, settled),
        "rss_series_mb": {
            name: [_mb(sample.get(name, (None, None))[1]) for sample in samples] for name in start
        },
    }


async def _sample_rss(pipeline: Pipeline, samples: list[Reading]) -> None:
    while True:
        samples.append(_rss(pipeline))
        await asyncio.sleep(RSS_EVERY)


def _rss(pipeline: Pipeline) -> Reading:
    """Each process's (pid, RSS bytes) now."""
    pids = {**pipeline.pids(), "broker": broker_pid(amqp_url()), "campaign": os.getpid()}
    return {name: (pid, None if pid is None else rss_bytes(pid)) for name, pid in pids.items()}


def _rss_report(
    start: Reading, warm: Reading, end: Reading, settled: Reading
) -> dict[str, dict[str, Any]]:
    """Growth is judged at the end of the steady load; settling reads every dossier back from
    the simulator, which is the checker's load, not the soak's, and is reported apart."""
    report: dict[str, dict[str, Any]] = {}
    for name, (pid, first) in start.items():
        warm_pid, warmed = warm.get(name, (None, None))
        end_pid, last = end.get(name, (None, None))
        growth = None
        if warmed and last and warm_pid == end_pid:
            growth = round((last - warmed) / warmed * 100, 1)
        report[name] = {
            "start": _mb(first),
            "warm": _mb(warmed),
            "end": _mb(last),
            "settled": _mb(settled.get(name, (None, None))[1]),
            "growth_after_warm_up_pct": growth,
            # A process killed by a fault and restarted is a new one: its RSS starts again.
            "same_process": pid == end_pid,
        }
    return report


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _management_url(url: str) -> str:
    from bus.management import management_url_for

    return os.environ.get("BUS_MANAGEMENT_URL") or management_url_for(url)


def _work_directory(stack: ExitStack, keep: bool) -> Path:
    if keep:
        return Path(mkdtemp(prefix="bench-chaos-"))
    return Path(stack.enter_context(TemporaryDirectory(prefix="bench-chaos-")))


def describe(result: dict[str, Any]) -> str:
    counts = ", ".join(
        f"{name} {result[name]}"
        for name in ("lost", "duplicate_applied", "stale_applied", "unexpected",
                     "dead_lettered_valid")
    )  # fmt: skip
    faults = ", ".join(f"{name}×{count}" for name, count in result["faults"].items())
    return (
        f"chaos: {result['events']:,} events at {result['rate_eps']}/s under {faults}: {counts} "
        f"({result['reapplied_identical']} identical re-applies); settled: {result['settled']}; "
        f"{result['duration_s']} s on {result['cores']} cores"
    )
