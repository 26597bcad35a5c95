"""A portal call whose answer was lost may still have been applied: its dossiers are in
doubt, and no older event of theirs is sent, by this service or by one started again after it
was killed, until an event at least as new is applied."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sync_support import delivered

from bus.errors import PortalUnavailable
from bus.message import Message
from bus.sync.portal import Guard, ItemResult
from bus.sync.service import SyncService
from bus.sync.store import StateStore, open_store
from factories import a_dossier, a_status_changed
from schemas import DossierStatus


class Portal:
    """Applies every item; while `answers` is False, the answer never comes back."""

    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.applied: list[str] = []

    async def upsert_dossiers(
        self,
        madonvi: str,
        items: Sequence[dict[str, Any]],
        updating: bool,
        *,
        guard: Guard | None = None,
    ) -> list[ItemResult]:
        return self._answer(items)

    async def record_progress(
        self, madonvi: str, items: Sequence[dict[str, Any]], *, guard: Guard | None = None
    ) -> list[ItemResult]:
        return self._answer(items)

    def _answer(self, items: Sequence[dict[str, Any]]) -> list[ItemResult]:
        self.applied += [item["TrangThaiHoSo"] for item in items if "TrangThaiHoSo" in item]
        if not self.answers:
            raise PortalUnavailable("the connection was reset before the answer")
        return [ItemResult(item["MaHoSo"], 0, "") for item in items]


def a_message(seq: int, status: int) -> Message:
    return delivered(a_status_changed(seq, dossier=a_dossier(status=DossierStatus(status))))


async def handled(store: StateStore, portal: Portal, *messages: Message) -> list[str]:
    """The outcome of each message, through a service that takes back the store's doubts."""
    service = SyncService(store, portal, linger=0, concurrency=1)  # type: ignore[arg-type]
    await service.resume()
    outcomes = []
    for message in messages:
        try:
            await service.handle(message)
        except PortalUnavailable:
            message.outcome = "failed"
        outcomes.append(message.outcome)
    await service.close()
    return outcomes


def test_a_service_started_again_sends_no_event_older_than_a_call_whose_answer_was_lost(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    portal = Portal(answers=False)

    async def scenario() -> tuple[list[str], list[str]]:
        async with open_store(url) as store:  # the first run: killed after the lost answer
            first = await handled(store, portal, a_message(seq=4, status=4))
        portal.answers = True
        async with open_store(url) as store:  # started again
            again = await handled(
                store, portal, a_message(seq=2, status=2), a_message(seq=4, status=4)
            )
        return first, again

    first, again = asyncio.run(scenario())
    assert first == ["failed"]
    assert again == ["stale", "applied"]
    assert portal.applied == ["4", "4"]  # never "2" after "4"


@pytest.mark.parametrize("answered", [True, False])
def test_an_applied_event_settles_the_doubt_and_newer_events_were_never_held(
    tmp_path: Path, answered: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    portal = Portal(answers=answered)

    async def scenario() -> tuple[list[str], dict[str, int]]:
        async with open_store(url) as store:
            outcomes = await handled(store, portal, a_message(seq=3, status=2))
            portal.answers = True
            outcomes += await handled(store, portal, a_message(seq=5, status=4))
            return outcomes, await store.doubts()

    outcomes, doubts = asyncio.run(scenario())
    assert outcomes == ["applied" if answered else "failed", "applied"]
    assert doubts == {}
