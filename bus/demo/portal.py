"""The portal, as its operator API shows it: what the simulator holds of the demo's units,
compared with each dossier's final state, and how long each took to get there."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import httpx
import orjson

from bus.demo.sites import Site
from schemas import Dossier
from schemas.wire import to_dossier_item, to_progress_item

LOOK: Final = 0.5  # the shortest pause between two looks at the simulator
APPLIED_SLACK: Final = 0.002  # the simulator gives times in whole milliseconds


@dataclass(frozen=True)
class FinalState:
    """A dossier's final state, as the portal must hold it."""

    item: dict[str, Any]
    steps: list[dict[str, str]]
    status: int


class Portal:
    """What the simulator holds of the demo's units, looked at again and again (`watch`)."""

    def __init__(self, url: str, sites: list[Site]) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self.sites = {site.unit: site for site in sites}
        self.finals = {site.unit: _finals(site.system.expected()) for site in sites}
        self.held: dict[str, dict[str, dict[str, Any]]] = {unit: {} for unit in self.sites}
        # Per unit, each synced dossier's lag in seconds (see `_synced`), as of the last look.
        self.lags: dict[str, dict[str, float]] = {unit: {} for unit in self.sites}

    @property
    def expected(self) -> int:
        return sum(map(len, self.finals.values()))

    @property
    def synced(self) -> int:
        return sum(map(len, self.lags.values()))

    async def watch(self) -> None:
        """Look until cancelled. Looking shares the process with the pipeline it watches:
        with many dossiers a look takes long, and the demo then looks less often."""
        while True:
            started = time.monotonic()
            await self.look()
            await asyncio.sleep(max(LOOK, 3 * (time.monotonic() - started)))

    async def look(self) -> None:
        # Parsing and comparing thousands of dossiers is work: off the event loop, which
        # the connectors and the sync service need meanwhile.
        for unit, site in self.sites.items():
            self.held[unit] = await self._records(unit)
            self.lags[unit] = await asyncio.to_thread(self._synced, site)

    async def _records(self, unit: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        after = ""
        while True:
            params: dict[str, str | int] = {"unit": unit, "limit": 10_000, "after": after}
            answer = (await self.http.get("/_sim/dossiers", params=params)).raise_for_status()
            page = await asyncio.to_thread(orjson.loads, answer.content)
            found.update((record["code"], record) for record in page["dossiers"])
            if page["next"] is None:
                return found
            after = page["next"]

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.http.get("/_sim/stats")).raise_for_status().json()
        return stats

    def _synced(self, site: Site) -> dict[str, float]:
        """Each dossier the portal holds in its final state, applied after that state was
        handed over (not an earlier version that looks the same), and its lag: from the
        hand-over to the portal applying it (the simulator's `updated_at`)."""
        lags: dict[str, float] = {}
        for code, final in self.finals[site.unit].items():
            record = self.held[site.unit].get(code)
            if record is None or code not in site.handed:
                continue
            if record["item"] != final.item or record["progress"] != final.steps:
                continue
            lag = _seconds(record["updated_at"]) - site.handed[code]
            if lag >= -APPLIED_SLACK:
                lags[code] = max(lag, 0.0)
        return lags

    def missing(self, site: Site) -> list[str]:
        """Why each dossier not synced is not, one line each."""
        lines = []
        for code, final in sorted(self.finals[site.unit].items()):
            record = self.held[site.unit].get(code)
            if code in self.lags[site.unit]:
                continue
            if record is None:
                lines.append(f"{code}: not on the portal")
            elif record["status"] != final.status:
                lines.append(
                    f"{code}: status {record['status']} on the portal, {final.status} expected"
                )
            elif record["item"] != final.item:
                lines.append(f"{code}: the portal's dossier differs from the local one")
            elif record["progress"] != final.steps:
                lines.append(
                    f"{code}: {len(record['progress'])} processing steps on the portal,"
                    f" {len(final.steps)} expected"
                )
            else:
                lines.append(f"{code}: its last change is not applied yet")
        return lines


def _finals(expected: dict[str, Dossier]) -> dict[str, FinalState]:
    return {
        code: FinalState(
            to_dossier_item(dossier),
            [to_progress_item(code, step) for step in dossier.progress],
            int(dossier.status),
        )
        for code, dossier in expected.items()
    }


def _seconds(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()
