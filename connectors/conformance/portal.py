"""The portal simulator, as its operator endpoints (/_sim/) show it: the dossiers of the
connector's unit, compared with the events sent."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import httpx

from schemas import Event
from schemas.wire import to_dossier_item, to_progress_item

DOSSIER_SERVICE: Final = "DongBoHoSoMC"


class Portal:
    """The simulator's /_sim/ endpoints, for the dossiers of one unit."""

    def __init__(self, url: str, unit: str) -> None:
        self.unit = unit
        self._http = httpx.AsyncClient(base_url=url, timeout=30)

    async def close(self) -> None:
        await self._http.aclose()

    async def records(self) -> dict[str, dict[str, Any]]:
        """The simulator's records of the connector's unit, by dossier code."""
        found: dict[str, dict[str, Any]] = {}
        after = ""
        while True:
            params: dict[str, str | int] = {"unit": self.unit, "limit": 10_000}
            params["after"] = after
            answer = await self._http.get("/_sim/dossiers", params=params)
            page = answer.raise_for_status().json()
            found.update((record["code"], record) for record in page["dossiers"])
            if page["next"] is None:
                return found
            after = page["next"]

    async def differences(
        self, expected: Mapping[str, Event], codes: list[str], after: dict[str, int]
    ) -> list[str]:
        """How the simulator's dossiers of `codes` differ from their `expected` events, each
        of `after` with more updates applied than it says."""
        held = await self.records()
        problems = []
        for code in codes:
            dossier = expected[code].payload.dossier
            record = held.get(code)
            if record is None:
                problems.append(f"{code}: missing on the portal simulator")
                continue
            if code in after and record["version"] <= after[code]:
                problems.append(f"{code}: its new version not applied")
            item = to_dossier_item(dossier)
            if record["item"] != item:
                keys = item.keys() | record["item"].keys()
                fields = sorted(k for k in keys if item.get(k) != record["item"].get(k))
                problems.append(f"{code}: differs from the mapped dossier in {', '.join(fields)}")
            steps = [to_progress_item(code, step) for step in dossier.progress]
            if record["progress"] != steps:
                count = f"{len(record['progress'])} held, {len(steps)} mapped"
                problems.append(f"{code}: progress steps differ ({count})")
        return problems

    async def updates(self, codes: list[str]) -> dict[str, int]:
        """How many dossier updates the simulator has applied to each of these dossiers."""
        held = await self.records()
        return {code: int(held[code]["version"]) for code in codes if code in held}

    async def applied_twice(self, codes: list[str]) -> list[str]:
        """Dossiers whose history holds the same item twice in a row."""
        twice = []
        for code in codes:
            answer = await self._http.get(f"/_sim/dossiers/{quote(code, safe='')}")
            rows = answer.raise_for_status().json()["history"]
            items = [row["item"] for row in rows if row["service"] == DOSSIER_SERVICE]
            if any(a == b for a, b in itertools.pairwise(items)):
                twice.append(code)
        return twice
