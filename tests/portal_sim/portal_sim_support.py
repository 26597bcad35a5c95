"""A small client of the portal simulator for its tests: real HTTP over httpx, the envelope of
docs/portal-api.md, and the `/_sim/` endpoints. The tests read as the sync service would call."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from factories import AGENCY, a_dossier
from schemas import Dossier
from schemas.wire import to_dossier_item, to_progress_item

PASSWORD = "dossier-bus"  # the simulator's default


def dossier_code(n: int, agency: str = AGENCY) -> str:
    return f"{agency}-240115-{n:04d}"


def dossier_item(n: int = 1, agency: str = AGENCY, **changes: Any) -> dict[str, Any]:
    """A valid DongBoHoSoMC item: the factory dossier, numbered `n`."""
    return dict(to_dossier_item(a_dossier(code=dossier_code(n, agency), **changes)))


def progress_items(dossier: Dossier) -> list[dict[str, str]]:
    return [to_progress_item(dossier.code, step) for step in dossier.progress]


class PortalClient:
    """Calls as one agency: `madonvi` and the `dstcode` header are its agency code."""

    def __init__(self, url: str, agency: str = AGENCY, timeout: float = 5.0) -> None:
        self.http = httpx.Client(base_url=url, headers={"dstcode": agency}, timeout=timeout)
        self.agency = agency
        self.session = ""

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: Any, **options: Any) -> dict[str, Any]:
        """A portal call that must answer HTTP 200: the portal's answer."""
        response = self.http.post(path, json=body, **options)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def login(self, password: str = PASSWORD, username: str = "igate-hcm") -> dict[str, Any]:
        answer = self.post("/auth", {"username": username, "password": password})
        self.session = answer.get("session", "")
        return answer

    def envelope(self, service: str, data: Any, **fields: Any) -> dict[str, Any]:
        return {"session": self.session, "madonvi": self.agency, "service": service,
                "data": data, **fields}  # fmt: skip

    def sync(
        self, items: Iterable[dict[str, Any]], updating: bool = False, **options: Any
    ) -> dict[str, Any]:
        body = self.envelope("DongBoHoSoMC", list(items), isUpdating=str(updating))
        return self.post("/integration", body, **options)

    def progress(self, items: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return self.post("/integration", self.envelope("CapNhatTienDoHoSoMC", list(items)))

    def lookup(self, code: str) -> dict[str, Any]:
        body = {"session": self.session, "madonvi": self.agency, "service": "TraCuuHoSo",
                "MaHoSo": code}  # fmt: skip
        return self.post("/share", body)

    # ---- the simulator's own endpoints

    def record(self, code: str) -> dict[str, Any]:
        response = self.http.get(f"/_sim/dossiers/{code}")
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record

    def faults(self, **changes: Any) -> dict[str, Any]:
        response = self.http.put("/_sim/faults", json=changes)
        response.raise_for_status()
        settings: dict[str, Any] = response.json()
        return settings

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get("/_sim/stats").json()
        return stats


def codes(answer: dict[str, Any]) -> list[int]:
    """The per-item error codes of an /integration answer."""
    return [line["error_code"] for line in answer["result"]]
