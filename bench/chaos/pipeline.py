"""The campaign's pipeline, every part a process of its own: the portal simulator, the sync
service and two connectors (G01 read from an SQL table, H31 from file drops), the sample
local systems written from here; and how to drive it, watch it settle and read it back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from bench.chaos.schedule import Schedule, inject
from bench.checker import Held, Version
from bench.faults import BrokerFaults, PortalFaults, Service, wait_http
from bus import headers
from bus.broker import Connection
from bus.declarations import apply_topology
from bus.demo.sites import EXAMPLES, write_keys
from bus.management import Management, vhost_of
from bus.settings import Settings
from bus.topology import DEAD_LETTER_QUEUE, is_sync_queue, topology
from connectors.config import load_config
from connectors.sample.database import LocalDatabase
from connectors.sample.files import FORMATS, export
from connectors.sample.local import LocalSystem
from schemas.wire import to_dossier_item, to_progress_item

START: Final = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
TICK: Final = 0.2
CATCH_UP: Final = 1.0  # seconds of events a write holds at most
PORTAL_TIMEOUT: Final = 2.0  # the sync service's; a stall lasts longer
# The retry budget, like the faults, is production's compressed: there, four tiers hold a
# message 1 s to 10 min, about 11 minutes in all; here about 50 s over MAX_ATTEMPTS, longer
# than a few faults in a row, so that only an event that cannot succeed is dead-lettered.
RETRY_DELAYS: Final = (0.5, 2.0, 5.0, 10.0)
MAX_ATTEMPTS: Final = 8
QUIET: Final = 6.0  # seconds all must stay settled: the management API's counts lag 5 s


@dataclass
class Site:
    unit: str
    dossiers: int
    system: LocalSystem
    config: Path
    state: Path  # the connector's state folder, its outbox inside


class Pipeline:
    max_rate: Final = 200.0  # events/s the flow is never asked above, on 2 cores

    def __init__(self, folder: Path, vhost: str, broker: BrokerFaults) -> None:
        self.folder, self.vhost, self.broker = folder, vhost, broker
        self.timeout = PORTAL_TIMEOUT
        self.sites: list[Site] = []
        self.services: list[Service] = []
        self.written = 0
        self.restarts: dict[str, int] = {}  # services found dead that no fault killed
        self._busy: set[str] = set()
        self._writers: dict[str, Callable[[list[dict[str, Any]]], object]] = {}
        self._truth: dict[str, list[Version]] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, folder: Path, vhost: str, broker: BrokerFaults, events: int, seed: int
    ) -> AsyncIterator[Pipeline]:
        pipeline = cls(folder, vhost, broker)
        with contextlib.ExitStack() as stack:
            stack.callback(pipeline._stop)
            await pipeline._start(events, seed, stack)
            yield pipeline

    async def _start(self, events: int, seed: int, stack: contextlib.ExitStack) -> None:
        port = _free_port()
        self.portal_url = f"http://127.0.0.1:{port}"
        db = str(self.folder / "portal.sqlite3")
        self.simulator = self._service(
            "simulator", "portal-sim", "--port", str(port), "--db", db, "--log-level", "warning"
        )
        await asyncio.to_thread(wait_http, f"{self.portal_url}/healthz", self.simulator)
        self.portal_faults = PortalFaults(self.portal_url)
        settings = Settings(retry_delays=RETRY_DELAYS, max_attempts=MAX_ATTEMPTS)
        connection = Connection(self.vhost, name="bench-chaos")
        await connection.start(timeout=30)
        await apply_topology(connection, topology(settings))
        await connection.close()
        names = {kind: load_config(EXAMPLES / f"{kind}.toml").connector.name
                 for kind in ("sql_poll", "file_drop")}  # fmt: skip
        keys = write_keys(self.folder, list(names.values()))
        self.sync = self._service("sync", "sync", "run", "--metrics-port", "0", env={
            "BUS_PORTAL_URL": self.portal_url,
            "BUS_STATE_URL": f"sqlite:///{self.folder / 'sync-state.sqlite3'}",
            "BUS_VERIFY_KEYS_FILE": str(self.folder / "keys.json"),
            "BUS_SYNC_RATE": "500", "BUS_PORTAL_TIMEOUT": str(PORTAL_TIMEOUT),
            "BUS_RETRY_DELAYS": orjson.dumps(RETRY_DELAYS).decode(),
            "BUS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "BUS_BREAKER_COOLDOWN": "1", "BUS_BREAKER_MAX_COOLDOWN": "5",
        })  # fmt: skip
        per_site = _dossiers_for(events // 2, seed)
        self.connectors = []
        for kind, agency, offset in (
            ("sql_poll", "000.00.01.G01", 1),
            ("file_drop", "000.00.01.H31", 31),
        ):
            site = self._site(kind, agency, seed + offset, per_site, stack)
            key_id, secret = keys[names[kind]]
            env = {"BUS_SIGNING_KEY_ID": key_id, "BUS_SIGNING_KEY": secret}
            args = ("connector", "run", str(site.config), "--metrics-port", "0")
            self.connectors.append(self._service(f"connector {names[kind]}", *args, env=env))

    def _service(self, name: str, *args: str, env: dict[str, str] | None = None) -> Service:
        base = {"BUS_AMQP_URL": self.vhost, "BUS_RECONNECT_MAX_DELAY": "0.5",
                "BUS_LOG_FORMAT": "json", "BUS_LOG_LEVEL": "warning"}  # fmt: skip
        log = self.folder / f"{name.replace(' ', '-')}.log"
        service = Service(name, [sys.executable, "-m", "bus", *args], {**base, **(env or {})}, log)
        service.start()
        self.services.append(service)
        return service

    def _site(
        self, kind: str, agency: str, seed: int, dossiers: int, stack: contextlib.ExitStack
    ) -> Site:
        system = LocalSystem(agency, dossiers, seed=seed, start=START)
        state = self.folder / f"state-{system.unit}"
        if kind == "sql_poll":
            database = LocalDatabase(f"sqlite:///{self.folder / 'g01.sqlite3'}")
            stack.callback(database.dispose)
            database.create_table()
            source = {"url": f"sqlite:///{self.folder / 'g01.sqlite3'}"}
            self._writers[system.unit] = database.write
        else:
            drop = self.folder / "h31-drop"
            drop.mkdir()
            formats = itertools.cycle(FORMATS)
            source = {"folder": str(drop)}
            self._writers[system.unit] = lambda records: export(records, drop, next(formats))
        config = _config(kind, self.folder, state, source)
        site = Site(system.unit, dossiers, system, config, state)
        self.sites.append(site)
        return site

    def _stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def pids(self) -> dict[str, int | None]:
        return {service.name: service.pid for service in self.services}

    async def restart(self, service: Service, down: float) -> None:
        self._busy.add(service.name)
        try:
            await asyncio.to_thread(service.kill)
            await asyncio.sleep(down)
            service.start()
        finally:
            self._busy.discard(service.name)

    async def _watch(self) -> None:
        """Start again a process that died without a fault killing it, and count it."""
        while True:
            for service in self.services:
                if service.name not in self._busy and not service.alive():
                    self.restarts[service.name] = self.restarts.get(service.name, 0) + 1
                    service.start()
            await asyncio.sleep(1)

    async def _write(self, events: int) -> None:
        """Write up to `events` more changes, spread over the sites by what each has left."""
        for site in self.sites:
            left = sum(s.system.remaining for s in self.sites)
            steps = min(site.system.remaining, round(events * site.system.remaining / max(left, 1)))
            if steps:
                records = site.system.advance(steps)
                await asyncio.to_thread(self._writers[site.unit], records)
                self.written += len(records)

    @property
    def finished(self) -> bool:
        return all(site.system.finished for site in self.sites)

    async def flow(self, schedule: Schedule, rate: float, rng: random.Random) -> None:
        """Write at `rate` events/s while the faults of `schedule` run; return when both
        are done, the faults ended and the broker restored."""
        started = time.monotonic()

        async def lane(planned: list[Any]) -> None:
            for fault in planned:
                await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
                await inject(fault.name, self, rng)
                schedule.done[fault.name] += 1

        watcher = asyncio.create_task(self._watch())
        faults = asyncio.gather(*(lane(planned) for planned in schedule.lanes))
        try:
            # Paced by the clock, not by ticks counted: a write takes time of its own, and a
            # soak of M minutes must write its events in M minutes. Behind, it catches up a
            # second's worth a tick: a sample system writes steadily, not one huge export.
            before = self.written
            while not self.finished:
                due = rate * (time.monotonic() - started) - (self.written - before)
                await self._write(max(0, int(min(due, rate * CATCH_UP))))
                await asyncio.sleep(TICK)
            await faults
        finally:
            faults.cancel()
            await asyncio.gather(faults, return_exceptions=True)
            await asyncio.to_thread(self.portal_faults.clear)
            await asyncio.to_thread(self.broker.restore)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def measure_capacity(self, events: int = 3000) -> float:
        """Events/s the pipeline drains, without faults: `events` written at once, timed
        until the portal's counts stop moving."""
        started = time.monotonic()
        await self._write(events)
        last, changed_at = -1, started
        while time.monotonic() - changed_at < 3:
            units = await asyncio.to_thread(self.portal_faults.call, "GET", "/_sim/units")
            now = sum(u["dossiers"] + u["updates"] for u in units.values())
            if now != last:
                last, changed_at = now, time.monotonic()
            await asyncio.sleep(0.5)
        return self.written / max(changed_at - started, 0.001)

    async def settle(self, timeout: float) -> dict[str, Any]:
        """Wait until outboxes and queues are empty and the portal holds every final state,
        for QUIET seconds; what is missing when `timeout` passes first."""
        started = time.monotonic()
        finals = {code: versions[-1] for code, versions in self.truth().items()}
        quiet_since: float | None = None
        while True:
            left = await asyncio.to_thread(self._left, finals)
            now = time.monotonic()
            if not any(left.values()):
                quiet_since = quiet_since or now
                if now - quiet_since >= QUIET:
                    return {"ok": True, "seconds": round(now - started, 1)}
            else:
                quiet_since = None
            if now - started > timeout:
                return {"ok": False, "seconds": round(now - started, 1), "left": left}
            await asyncio.sleep(1)

    def _left(self, finals: dict[str, Version]) -> dict[str, int]:
        with Management(self.broker.management_url) as api:
            queues = {
                q["name"]: int(q.get("messages", 0)) for q in api.queues(vhost_of(self.vhost))
            }
        queued = sum(n for name, n in queues.items() if is_sync_queue(name) or ".retry." in name)
        held = self._records()
        behind = sum(
            1 for code, final in finals.items()
            if (r := held.get(code)) is None
            or not Held.of(r["item"], r["progress"], ()).holds(final)
        )  # fmt: skip
        return {"outbox": sum(map(_outbox_size, self.sites)), "queued": queued,
                "dossiers_behind": behind}  # fmt: skip

    def _records(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=self.portal_url, timeout=60) as http:
            for site in self.sites:
                after = ""
                while True:
                    params: dict[str, Any] = {"unit": site.unit, "after": after, "limit": 10_000}
                    page = orjson.loads(http.get("/_sim/dossiers", params=params).content)
                    found.update((r["code"], r) for r in page["dossiers"])
                    if page["next"] is None:
                        break
                    after = page["next"]
        return found

    def truth(self) -> dict[str, list[Version]]:
        """Each dossier's versions at its source, every one the sites will write, rendered
        as the portal stores them."""
        if self._truth is None:
            truth: dict[str, list[Version]] = {}
            for site in self.sites:
                for event in site.system.events():
                    dossier, code = event.payload.dossier, str(event.dossier_code)
                    steps = (to_progress_item(code, step) for step in dossier.progress)
                    truth.setdefault(code, []).append(
                        Version.of(event.seq, to_dossier_item(dossier), steps)
                    )
            self._truth = truth
        return self._truth

    async def held(self) -> dict[str, Held]:
        records = await asyncio.to_thread(self._records)
        return await asyncio.to_thread(self._histories, records)

    def _histories(self, records: dict[str, dict[str, Any]]) -> dict[str, Held]:
        held: dict[str, Held] = {}
        with httpx.Client(base_url=self.portal_url, timeout=60) as http:
            for code in list(records):
                record = records.pop(code)  # read back one at a time: a soak holds 100,000s
                view = orjson.loads(_patient_get(http, f"/_sim/dossiers/{code}").content)
                history = ((bool(row["changed"]), row["item"]) for row in view["history"]
                           if row["service"] == "DongBoHoSoMC")  # fmt: skip
                held[code] = Held.of(record["item"], record["progress"], history)
        return held

    async def dead_letters(self) -> tuple[int, dict[str, list[str]]]:
        """How many messages portal.sync.dlq holds, and for each reason, the first few
        (dossier code, error), so that a count that should be zero says why it is not."""

        def look() -> tuple[int, dict[str, list[str]]]:
            with Management(self.broker.management_url) as api:
                queues = api.queues(vhost_of(self.vhost))
                count = sum(int(q.get("messages", 0)) for q in queues
                            if q["name"] == DEAD_LETTER_QUEUE)  # fmt: skip
                messages = api.peek(vhost_of(self.vhost), DEAD_LETTER_QUEUE, 20) if count else []
            reasons: dict[str, list[str]] = {}
            for message in messages:
                found = message.get("properties", {}).get("headers", {})
                reason = str(found.get(headers.REASON, found.get("x-first-death-reason", "?")))
                why = f"{found.get(headers.DOSSIER_CODE, '?')}: {found.get(headers.ERROR, '')}"
                reasons.setdefault(reason, []).append(why[:200])
            return count, reasons

        return await asyncio.to_thread(look)


def _patient_get(http: httpx.Client, path: str, tries: int = 5) -> httpx.Response:
    """A read of the simulator that waits out a machine busy with other work."""
    for attempt in range(1, tries + 1):
        try:
            return http.get(path)
        except httpx.TimeoutException:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")


def _outbox_size(site: Site) -> int:
    path = site.state / "connector.sqlite3"
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return 1  # busy or not made yet: not settled


def _dossiers_for(events: int, seed: int) -> int:
    """Dossiers whose lifecycles hold about `events` changes."""
    sample = LocalSystem("000.00.01.G01", 100, seed=seed, start=START).remaining / 100
    return max(1, round(events / sample))


def _config(kind: str, folder: Path, state: Path, source: dict[str, str]) -> Path:
    """The example config of `kind`, its state in `state`, polled often, `source` changed."""
    text = (EXAMPLES / f"{kind}.toml").read_text(encoding="utf-8")
    text = re.sub(
        r'(?m)^state_dir = ".*"$', f"state_dir = {orjson.dumps(str(state)).decode()}", text
    )
    text = re.sub(r"(?m)^poll_interval = .*$", f"poll_interval = {TICK}", text)
    head, table, rest = text.partition("\n[source]\n")
    body, next_table, tail = rest.partition("\n[")  # only [source] changes
    for name, value in source.items():
        body = re.sub(rf'(?m)^{name} = ".*"$', f"{name} = {orjson.dumps(value).decode()}", body)
    if kind == "file_drop":  # exports are written whole, then renamed: no need to wait
        body = "settle_seconds = 0\n" + body
    text = head + table + body + next_table + tail
    path = folder / f"{kind}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
