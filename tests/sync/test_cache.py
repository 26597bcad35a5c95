"""The sync service keeps only the dossiers seen lately in memory (`sync_cache_dossiers`);
one it has let go is read back from the state store, so a small cache costs reads, never
a dossier written anew or a step sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sync_support import delivered

from bus.message import Message
from bus.sync.portal import Guard, ItemResult
from bus.sync.service import SyncService
from bus.sync.store import open_store
from factories import AGENCY, a_dossier, a_status_changed
from schemas import Dossier


class Portal:
    """Applies every item and remembers each call: (service, dossier code, updating)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool | None]] = []

    async def upsert_dossiers(
        self,
        madonvi: str,
        items: Sequence[dict[str, Any]],
        updating: bool,
        *,
        guard: Guard | None = None,
    ) -> list[ItemResult]:
        self.calls += [("dossier", item["MaHoSo"], updating) for item in items]
        return [ItemResult(item["MaHoSo"], 0, "") for item in items]

    async def record_progress(
        self, madonvi: str, items: Sequence[dict[str, Any]], *, guard: Guard | None = None
    ) -> list[ItemResult]:
        self.calls += [("step", item["MaHoSo"], None) for item in items]
        return [ItemResult(item["MaHoSo"], 0, "") for item in items]


def a_message(dossier: Dossier, seq: int) -> Message:
    return delivered(a_status_changed(seq, dossier=dossier))


def with_two_steps(dossier: Dossier) -> Dossier:
    step = dossier.progress[0]
    later = step.model_copy(
        update={"content": "Trình lãnh đạo ký", "handled_at": step.handled_at.replace(hour=14)}
    )
    return dossier.model_copy(update={"progress": (step, later)})


def test_dossiers_the_cache_let_go_are_updated_with_only_their_new_steps(
    tmp_path: Path,
) -> None:
    first = a_dossier(code=f"{AGENCY}-240115-0001")
    second = a_dossier(code=f"{AGENCY}-240115-0002")
    portal = Portal()

    async def scenario() -> list[str]:
        async with open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}") as store:
            service = SyncService(
                store,
                portal,
                linger=0.05,
                concurrency=1,
                cache_size=1,  # type: ignore[arg-type]
            )
            created = [a_message(first, 1), a_message(second, 1)]
            for message in created:
                await service.handle(message)
            # Handled together, each reading its dossier evicts the other's before the batch.
            updated = [a_message(with_two_steps(first), 2), a_message(with_two_steps(second), 2)]
            await asyncio.gather(*(service.handle(message) for message in updated))
            await service.close()
            return [message.outcome for message in created + updated]

    assert asyncio.run(scenario()) == ["applied"] * 4
    creations = [call for call in portal.calls if call[0] == "dossier" and not call[2]]
    updates = [call for call in portal.calls if call[0] == "dossier" and call[2]]
    steps = [call[1] for call in portal.calls if call[0] == "step"]
    assert [code for _, code, _ in creations] == [first.code, second.code]
    assert sorted(code for _, code, _ in updates) == [first.code, second.code]
    assert sorted(steps) == sorted([first.code, second.code] * 2)  # one old, one new each
