"""The demo's run: the broker, the portal simulator, the sample sites, the sync service and
the connectors set up and started; the local systems moved; the portal waited for; then the
summary, and where to look next."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import quote, unquote, urlsplit

from prometheus_client import REGISTRY
from pydantic import SecretStr

from bus.broker import Connection
from bus.declarations import apply_topology
from bus.demo.broker import Broker, VirtualHost, find_broker, scratch_vhost
from bus.demo.console import DemoConsole, serve_console
from bus.demo.errors import DemoError
from bus.demo.portal import Portal
from bus.demo.progress import Bar
from bus.demo.sites import EXAMPLES, SAMPLES, TICK, Site, open_site, work_directory, write_keys
from bus.management import public_url
from bus.portal_sim import InProcessServer, Options
from bus.settings import Settings
from bus.sync.runner import run_sync
from bus.topology import SYNC_QUEUE, topology
from connectors.config import load_config

MOVE_SECONDS: Final = 10.0  # long enough to watch, short enough to wait for


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop cleanly, skip the summary."""


@dataclass(frozen=True)
class DemoOptions:
    dossiers: int = 60  # per local system
    keep_running: bool = False
    timeout: float = 180.0  # seconds for the bounded part, set-up included
    amqp_url: str | None = None  # BUS_AMQP_URL when it is set
    management_url: str | None = None  # BUS_MANAGEMENT_URL: only for a non-standard port


def run(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; the exit code: 0 all synced, 1 not within the timeout, 130 stopped."""

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say(
        f"dossier-bus demo: 3 local systems × {options.dossiers} dossiers → connectors → "
        "RabbitMQ → sync service → portal simulator"
    )
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(find_broker(options.amqp_url, options.management_url, say))
        vhost = stack.enter_context(scratch_vhost(broker, say))
        workdir = stack.enter_context(work_directory(options.keep_running))
        return asyncio.run(Demo(options, broker, vhost, workdir, out).run())


class Demo:
    def __init__(
        self, options: DemoOptions, broker: Broker, vhost: VirtualHost, workdir: Path, out: TextIO
    ) -> None:
        self.options, self.broker, self.vhost, self.workdir = options, broker, vhost, workdir
        self.out = out
        self.stopping = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.started = time.monotonic()
        self.deadline = self.started + options.timeout

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    async def run(self) -> int:
        self._stop_on_signals()
        try:
            with contextlib.ExitStack() as stack:
                async with contextlib.AsyncExitStack() as tasks:
                    return await self._run(stack, tasks)
        except Interrupted as why:
            self.say(f"\nstopped{f': {why}' if str(why) else ''}; cleaned up")
            return 130

    async def _run(self, stack: contextlib.ExitStack, tasks: contextlib.AsyncExitStack) -> int:
        url = self.vhost.amqp_url
        portal_url = stack.enter_context(
            InProcessServer(Options(db=self.workdir / "portal.sqlite3"))
        )
        names = [load_config(EXAMPLES / f"{s.example}.toml").connector.name for s in SAMPLES]
        keys = write_keys(self.workdir, names)
        settings = Settings(
            amqp_url=SecretStr(url),
            portal_url=portal_url,
            state_url=SecretStr(f"sqlite:///{self.workdir / 'sync-state.sqlite3'}"),
            verify_keys_file=self.workdir / "keys.json",
            sync_rate=200.0,
        )
        await self._apply_topology(settings)
        sites = []
        for sample, name in zip(SAMPLES, names, strict=True):
            key_id, secret = keys[name]
            signing = Settings(
                amqp_url=SecretStr(url), signing_key=SecretStr(secret), signing_key_id=key_id
            )
            sites.append(open_site(sample, self.options.dossiers, self.workdir, signing, stack))
        # Entered before the services start, so it stops after them: it watches them to the end.
        console = await tasks.enter_async_context(serve_console(settings, self.workdir))
        self._describe(portal_url, sites, console)

        self._start(tasks, "sync service", run_sync(settings))
        for site in sites:
            self._start(tasks, f"connector {site.connector.name}", site.connector.run())
        portal = Portal(portal_url, sites)
        tasks.push_async_callback(portal.http.aclose)
        self._start(tasks, "portal watcher", portal.watch())

        synced = await self._move(sites, portal) and await self._settle(portal)
        await self._summary(sites, portal)
        if not synced:
            self._report_missing(sites, portal)
            return 1
        self._where_to_look(portal_url, sites, console)
        if self.options.keep_running:
            await self._until_stopped()
        return 0

    async def _apply_topology(self, settings: Settings) -> None:
        connection = Connection.from_settings(settings, name="bus-demo")
        await connection.start(timeout=10)
        try:
            _, mismatches = await apply_topology(connection, topology(settings))
        finally:
            await connection.close()
        if mismatches:
            raise DemoError(
                f"the topology in virtual host {self.vhost.name!r} differs from the bus's: "
                + "; ".join(map(str, mismatches))
            )

    def _describe(self, portal_url: str, sites: list[Site], console: DemoConsole) -> None:
        vhost = (
            f"scratch virtual host {self.vhost.name} (deleted at the end)"
            if self.vhost.scratch
            else f"virtual host {self.vhost.name!r}"
        )
        kept = "kept" if self.options.keep_running else "deleted at the end"
        self.say(f"  broker        {self.broker.where}, {vhost}")
        self.say(f"  portal        simulator at {portal_url}")
        for site in sites:
            self.say(f"  {site.unit:<14}{site.sample.source}: {site.where}")
            self.say(
                f"  {'':<14}  ← connector {site.connector.name}"
                f" (connectors/examples/{site.sample.example}.toml)"
            )
        self.say(f"  console       {console.url}  (while the demo runs; log in as"
                 f" {_logins(console)})")  # fmt: skip
        self.say(f"  work dir      {self.workdir} ({kept})")

    def _start(
        self, tasks: contextlib.AsyncExitStack, name: str, work: Coroutine[Any, Any, None]
    ) -> None:
        """Run `work` in the background until the demo ends; it is cancelled then, in the
        reverse order of starting (connectors before the sync service before the portal)."""
        task = asyncio.create_task(work, name=name)
        self.tasks[name] = task

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)

        tasks.push_async_callback(stop)

    def _check(self) -> None:
        """Stop the demo if asked to, or if a part of it stopped by itself."""
        if self.stopping.is_set():
            raise Interrupted("")
        for name, task in self.tasks.items():
            if not task.done():
                continue
            if task.cancelled() or task.exception() is None:
                # Only Ctrl-C ends a part without an error: the sync service takes it for
                # itself once it runs (`Consumer.stop_on_signals`).
                raise Interrupted("")
            raise DemoError(f"the {name} failed: {task.exception()!r}") from task.exception()

    async def _move(self, sites: list[Site], portal: Portal) -> bool:
        """Move the local systems to their end over MOVE_SECONDS; False: out of time."""
        total = sum(site.system.remaining for site in sites)
        steps = max(1, math.ceil(total / len(sites) / (MOVE_SECONDS / TICK)))
        bar = Bar(self.out, "local systems", total, "changes written")
        written = 0
        while not all(site.system.finished for site in sites):
            self._check()
            if time.monotonic() > self.deadline:
                bar.finish(written, f", {portal.synced}/{portal.expected} dossiers synced")
                return False
            for site in sites:
                written += await site.advance(steps)
            bar.show(written, f", {portal.synced}/{portal.expected} dossiers synced")
            await asyncio.sleep(TICK)
        bar.finish(written, f", {portal.synced}/{portal.expected} dossiers synced")
        return True

    async def _settle(self, portal: Portal) -> bool:
        """Wait until the portal holds every dossier's final state; False: out of time."""
        bar = Bar(self.out, "portal", portal.expected, "dossiers synced")
        while portal.synced < portal.expected:
            self._check()
            if time.monotonic() > self.deadline:
                bar.finish(portal.synced)
                return False
            bar.show(portal.synced)
            await asyncio.sleep(0.1)
        bar.finish(portal.synced)
        return True

    async def _summary(self, sites: list[Site], portal: Portal) -> None:
        await portal.look()  # one last look, so that the numbers are the latest
        stats = await portal.stats()
        self.say(f"\nSummary ({time.monotonic() - self.started:.1f} s)")
        rows: list[tuple[str, ...]] = [_HEADER]
        for site in sites:
            expected, lags = len(portal.finals[site.unit]), [*portal.lags[site.unit].values()]
            name, source = site.connector.name, site.sample.source
            rows.append(_row(site.unit, name, source, expected, [site], lags))
        everyone = [lag for lags in portal.lags.values() for lag in lags.values()]
        rows.append(_row("all", "", "", portal.expected, sites, everyone))
        widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
        for row in rows:  # text left-aligned, numbers right-aligned
            cells = [cell.ljust(w) if i < 4 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(row, widths, strict=True))]  # fmt: skip
            self.say("  " + "  ".join(cells).rstrip())
        self.say("  events: published by each connector. lag: from writing a dossier's last change")
        self.say("  into its local system to the portal applying it (nearest rank, all dossiers).")
        items = stats["items"]
        dead = sum(_dead_lettered(site.unit) for site in sites)
        self.say(
            f"  portal simulator: {stats['calls']['total']} calls, {items['applied']} items"
            f" applied, {items['rejected']} refused. Dead letters, in the console: {dead}."
        )

    def _report_missing(self, sites: list[Site], portal: Portal) -> None:
        self.say(f"\nNot synced within {self.options.timeout:g} s. What the portal is missing:")
        if left := sum(site.system.remaining for site in sites):
            self.say(f"  (the local systems had {left} changes still to make: give it longer)")
        for site in sites:
            lines = portal.missing(site)
            if lines:
                self.say(f"  {site.unit}: {len(lines)} of {len(portal.finals[site.unit])} dossiers")
            for line in lines[:10]:
                self.say(f"    {line}")
            if len(lines) > 10:
                self.say(f"    ... and {len(lines) - 10} more")
        self.say(
            "  (--timeout SECONDS gives it longer; BUS_LOG_LEVEL=info shows what each part does)"
        )

    def _where_to_look(self, portal_url: str, sites: list[Site], console: DemoConsole) -> None:
        live = self.options.keep_running
        keep = "" if live else " (all of it stays up with: make demo DEMO_ARGS=--keep-running)"
        self.say(f"\nWhere to look next{keep}")
        self.say(f"  the portal        {portal_url}/_sim/stats  (and /_sim/units,"
                 f" /_sim/dossiers?unit={sites[0].unit})")  # fmt: skip
        user = unquote(urlsplit(self.broker.amqp_url).username or "guest")
        vhost = quote(self.vhost.name, safe="")
        self.say(f"  RabbitMQ          {public_url(self.broker.management_url)}/#/queues/{vhost}"
                 f"  (log in as {user})")  # fmt: skip
        if not live:  # the configs go with the work directory
            self.say("  refused records   bus connector rejects CONFIG  (the demo's CONFIGs are in"
                     " its work directory)")  # fmt: skip
            return
        for site in sites:
            self.say(f"  refused records   bus connector rejects {site.config_file}")
        self.say(f"  operator console  {console.url}  (log in as {_logins(console)})")
        self.say(f"  metrics           {console.metrics_url}")
        where = f"BUS_AMQP_URL='{_shown(self.vhost.amqp_url)}' BUS_OPS_URL='{console.ops_url}'"
        self.say(f"  queues and units  {where} bus status")
        self.say(f"  dead letters      {where} bus dlq list")
        self.say(f"  work directory    {self.workdir}")

    async def _until_stopped(self) -> None:
        self._stop_on_signals()  # the sync service took Ctrl-C for itself when it started
        self.say("\nEverything keeps running; Ctrl-C stops it.")
        with contextlib.suppress(Interrupted):
            while True:
                self._check()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1)
        self.say(f"stopped; the work directory stays: {self.workdir}")

    def _stop_on_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)


_HEADER: Final = ("unit", "connector", "source", "on the portal", "events", "rejected",
                  "dead-lettered", "lag p50", "lag p99")  # fmt: skip


def _row(
    unit: str, name: str, source: str, expected: int, sites: list[Site], lags: list[float]
) -> tuple[str, ...]:
    """A line of the summary: of one unit, or (`sites` all of them) of the whole demo."""
    state = "synced" if len(lags) == expected else "NOT synced"
    lags = sorted(lags)
    return (
        unit,
        name,
        source,
        f"{len(lags)}/{expected} {state}",
        str(sum(site.connector.committed for site in sites)),
        str(sum(site.connector.rejected for site in sites)),
        str(sum(_dead_lettered(site.unit) for site in sites)),
        _percentile(lags, 0.5),
        _percentile(lags, 0.99),
    )


def _dead_lettered(unit: str) -> int:
    """Messages of `unit` the sync service (in this process) dead-lettered."""
    labels = {"queue": SYNC_QUEUE, "unit": unit, "outcome": "dead_lettered"}
    return int(REGISTRY.get_sample_value("bus_messages_total", labels) or 0)


def _logins(console: DemoConsole) -> str:
    return ", or ".join(f"{x.name} / {x.password} ({x.units})" for x in console.logins)


def _shown(amqp_url: str) -> str:
    """The URL to paste, but a password other than RabbitMQ's default is not printed."""
    parts = urlsplit(amqp_url)
    if parts.password in (None, "guest"):
        return amqp_url
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:PASSWORD@{parts.netloc.rpartition('@')[2]}").geturl()


def _percentile(values: list[float], share: float) -> str:
    """Nearest rank, in milliseconds; values sorted."""
    if not values:
        return "-"
    return f"{values[max(0, math.ceil(share * len(values)) - 1)] * 1000:.0f} ms"
