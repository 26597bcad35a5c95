"""The flow the cluster carries: signed sample events published at a steady rate through the
bus's own publisher, the portal simulator and the sync service as processes, and what the
portal ends up holding, judged by the fault campaign's checker (`bench.checker`)."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from bench.checker import Held, Version
from bench.faults import Service, wait_http
from bus.errors import PublishError, Unroutable
from bus.publisher import EventPublisher
from bus.signing import KeyRing, Signer, VerifyKey
from connectors.sample import lifecycles
from schemas import Event
from schemas.wire import to_dossier_item, to_progress_item

AGENCY: Final = "000.00.01.H29"
UNIT: Final = "H29"
CONNECTOR: Final = "cluster-h29"
KEY_ID: Final = "cluster-h29-test"
SECRET: Final = b"the cluster test connector's key"
SIGNER: Final = Signer(KEY_ID, "hmac-sha256", SECRET)
START: Final = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
DOSSIER_SERVICE: Final = "DongBoHoSoMC"
RETRY_DELAYS: Final = (0.2, 0.5, 1.0)
MAX_ATTEMPTS: Final = 20


def events_in_waves(count: int, wave: int, seed: int) -> list[Event]:
    """`count` events of sample dossiers, `wave` dossiers at a time taking turns: a
    dossier's events follow each other closely (in flight together, redelivered together),
    each in seq order."""
    dossiers = lifecycles(AGENCY, count // 4, seed=seed, start=START, connector=CONNECTOR)
    mixed: list[Event] = []
    for at in range(0, len(dossiers), wave):
        turns = itertools.zip_longest(*dossiers[at : at + wave])
        mixed += [event for turn in turns for event in turn if event is not None]
        if len(mixed) >= count:
            return mixed[:count]
    raise ValueError(f"{count // 4} sample dossiers hold fewer than {count} events")


def truth(events: Sequence[Event]) -> dict[str, list[Version]]:
    """Each dossier's versions, as published, rendered as the portal stores them."""
    found: dict[str, list[Version]] = {}
    for event in events:
        dossier, code = event.payload.dossier, str(event.dossier_code)
        steps = (to_progress_item(code, step) for step in dossier.progress)
        found.setdefault(code, []).append(Version.of(event.seq, to_dossier_item(dossier), steps))
    return found


def write_keys(folder: Path) -> Path:
    return KeyRing([VerifyKey(KEY_ID, CONNECTOR, "hmac-sha256", SECRET)]).save(folder / "keys.json")


@dataclass
class Flow:
    """Publishes events at `rate` per second; a refused or failed publish is sent again
    after the others, as a connector's outbox would (the sync service drops it if stale)."""

    sender: EventPublisher
    rate: float
    published: int = 0
    sent_again: int = 0
    _pending: list[tuple[Event, asyncio.Future[None]]] = field(default_factory=list)

    async def run(self, events: Sequence[Event]) -> None:
        started = time.monotonic()
        for at, event in enumerate(events):
            due = started + at / self.rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            self._pending.append((event, await self.sender.send(event)))
            self.published += 1
        await self._confirmed()

    async def _confirmed(self) -> None:
        for _ in range(5):
            outcomes = await asyncio.gather(*(f for _, f in self._pending), return_exceptions=True)
            failed = []
            for (event, _), outcome in zip(self._pending, outcomes, strict=True):
                if isinstance(outcome, Unroutable) or not isinstance(outcome, PublishError | None):
                    raise outcome  # a broken topology, not a node going down
                if outcome is not None:
                    failed.append(event)
            self._pending = []
            if not failed:
                return
            self.sent_again += len(failed)
            self._pending = [(event, await self.sender.send(event)) for event in failed]
        raise AssertionError(f"{len(self._pending)} events still not confirmed after 5 tries")


class Portal:
    """The simulator as a process, read through its `/_sim/` endpoints."""

    def __init__(self, folder: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.service = Service(
            "portal simulator",
            [sys.executable, "-m", "bus", "portal-sim", "--port", str(port),
             "--db", str(folder / "portal.sqlite3"), "--log-level", "warning"],
            {},
            folder / "portal-sim.log",
        )  # fmt: skip

    def start(self) -> None:
        self.service.start()
        wait_http(f"{self.url}/healthz", self.service)

    def stop(self) -> None:
        self.service.stop()

    async def applied(self, http: httpx.AsyncClient) -> int:
        """Items the portal applied so far (dossiers and processing steps)."""
        stats = orjson.loads((await http.get(f"{self.url}/_sim/stats")).content)
        return int(stats["items"]["applied"])

    async def records(self, http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        after = ""
        while True:
            params: dict[str, Any] = {"unit": UNIT, "after": after, "limit": 10_000}
            page = orjson.loads(
                (await http.get(f"{self.url}/_sim/dossiers", params=params)).content
            )
            found.update((record["code"], record) for record in page["dossiers"])
            if page["next"] is None:
                return found
            after = page["next"]

    async def held(self, http: httpx.AsyncClient) -> dict[str, Held]:
        """What the portal holds of each dossier, with its history in the order applied."""
        records = await self.records(http)
        room = asyncio.Semaphore(8)

        async def one(code: str, record: dict[str, Any]) -> tuple[str, Held]:
            async with room:
                view = orjson.loads((await http.get(f"{self.url}/_sim/dossiers/{code}")).content)
            history = [(bool(row["changed"]), row["item"]) for row in view["history"]
                       if row["service"] == DOSSIER_SERVICE]  # fmt: skip
            return code, Held.of(record["item"], record["progress"], history)

        return dict(await asyncio.gather(*(one(c, r) for c, r in records.items())))

    async def behind(self, http: httpx.AsyncClient, finals: dict[str, Version]) -> int:
        """Dossiers whose final version the portal does not hold yet."""
        held = await self.records(http)
        return sum(
            1
            for code, final in finals.items()
            if (record := held.get(code)) is None
            or not Held.of(record["item"], record["progress"], ()).holds(final)
        )
