"""Reconcile's own bookkeeping, with a real state store and a stand-in portal and publisher
(the whole round trip is in test_sync_end_to_end.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bus.errors import PortalProtocolError
from bus.message import Outgoing
from bus.sync.reconcile import Summary, reconcile
from bus.sync.store import AppliedRow, open_store
from connectors.sample import lifecycles
from schemas import encode_event

APPLIED_AT = datetime(2025, 7, 1, tzinfo=UTC)


class Portal:
    """Has no dossier at all, and fails the lookup of one with an answer off the API."""

    def __init__(self, failing: str) -> None:
        self.failing = failing

    async def lookup(self, madonvi: str, dossier_code: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        if dossier_code == self.failing:
            raise PortalProtocolError("TraCuuHoSo answered without a dossier in data")
        return None


class Publisher:
    def __init__(self) -> None:
        self.published: list[Outgoing] = []

    async def publish(self, message: Outgoing) -> None:
        self.published.append(message)


def run(tmp_path: Path, count: int, failing: int | None) -> tuple[Summary, Publisher]:
    dossiers = lifecycles("000.00.01.H29", count, seed=1, start=APPLIED_AT)
    last_events = [events[-1] for events in dossiers]
    rows = [
        AppliedRow(
            str(e.dossier_code),
            "H29",
            e.seq,
            0,
            APPLIED_AT,
            encode_event(e),
            message_id=str(e.event_id),
            type=e.event_type,
        )
        for e in last_events
    ]
    publisher = Publisher()

    async def scenario() -> Summary:
        async with open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}") as store:
            await store.record(rows)
            portal = Portal("" if failing is None else str(last_events[failing].dossier_code))
            return await reconcile(store, portal, publisher, "H29", concurrency=2)  # type: ignore[arg-type]

    return asyncio.run(scenario()), publisher


def test_a_check_that_fails_early_fails_the_run_instead_of_going_uncounted(
    tmp_path: Path,
) -> None:
    # With a read-ahead of 8 checks, the 3rd is long finished when the 40th is read.
    with pytest.raises(PortalProtocolError):
        run(tmp_path, count=40, failing=2)


def test_every_dossier_the_portal_lacks_is_requeued_once(tmp_path: Path) -> None:
    summary, publisher = run(tmp_path, count=40, failing=None)
    assert (summary.checked, summary.missing, summary.requeued) == (40, 40, 40)
    assert len({message.message_id for message in publisher.published}) == 40
