"""A sync worker sends only what is still its own: a message whose channel closed is given
again by the broker, maybe to another worker that holds the shard now, so it is withdrawn
(retried), never sent; and after a reconnection the worker trusts the shared state store, not
its cache, since another worker may have applied its dossiers meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sync_support import delivered

from bus.errors import Withdrawn
from bus.message import Message
from bus.sync.breaker import CircuitBreaker
from bus.sync.portal import Guard, ItemResult, PortalClient
from bus.sync.ratelimit import TokenBucket
from bus.sync.service import SyncService
from bus.sync.store import open_store
from factories import a_dossier, a_status_changed


class Portal:
    """Applies every item, and asks the guard first, as the real client does."""

    def __init__(self) -> None:
        self.sent: list[str] = []  # dossier codes, one per item applied
        self.upserts = 0  # DongBoHoSoMC items applied

    async def upsert_dossiers(
        self,
        madonvi: str,
        items: Sequence[dict[str, Any]],
        updating: bool,
        *,
        guard: Guard | None = None,
    ) -> list[ItemResult]:
        results = self._apply(items, guard)
        self.upserts += len(items)
        return results

    async def record_progress(
        self, madonvi: str, items: Sequence[dict[str, Any]], *, guard: Guard | None = None
    ) -> list[ItemResult]:
        return self._apply(items, guard)

    def _apply(self, items: Sequence[dict[str, Any]], guard: Guard | None) -> list[ItemResult]:
        if guard is not None and not guard():
            raise Withdrawn("withdrawn before it was sent")
        self.sent += [item["MaHoSo"] for item in items]
        return [ItemResult(item["MaHoSo"], 0, "") for item in items]


def a_message(seq: int, generation: int = 1) -> Message:
    return delivered(a_status_changed(seq, dossier=a_dossier()), generation)


def test_a_message_whose_channel_closed_before_its_batch_left_is_withdrawn_not_sent(
    tmp_path: Path,
) -> None:
    portal = Portal()
    current = {"generation": 1}

    async def scenario() -> None:
        async with open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}") as store:
            service = SyncService(
                store,
                portal,  # type: ignore[arg-type]
                linger=0.2,
                lease=lambda message: message.generation == current["generation"],
            )
            handling = asyncio.create_task(service.handle(a_message(1)))
            await asyncio.sleep(0.05)  # waiting for its batch
            current["generation"] = 2  # the connection was lost and opened again
            await service.reopen()
            try:
                await handling
            finally:
                await service.close()

    with pytest.raises(Withdrawn):
        asyncio.run(scenario())
    assert portal.sent == []


def test_a_call_whose_lease_is_lost_while_it_waits_for_the_portal_is_withdrawn(
    tmp_path: Path,
) -> None:
    """The lease is asked again right before each call leaves (after waiting for the
    breaker, a slot, a token): a wait can be long, and the shard may have moved meanwhile."""
    portal = Portal()
    held = {"yes": True}

    async def scenario() -> None:
        async with open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}") as store:
            service = SyncService(
                store,
                portal,  # type: ignore[arg-type]
                linger=0.0,
                lease=lambda _message: held["yes"],
            )
            original = portal._apply

            def lost_meanwhile(items: Any, guard: Guard | None) -> list[ItemResult]:
                held["yes"] = False
                return original(items, guard)

            portal._apply = lost_meanwhile  # type: ignore[method-assign]
            try:
                await service.handle(a_message(1))
            finally:
                await service.close()

    with pytest.raises(Withdrawn):
        asyncio.run(scenario())
    assert portal.sent == []


def test_after_a_reconnection_a_dossier_another_worker_applied_meanwhile_is_read_again(
    tmp_path: Path,
) -> None:
    """Worker A applied seq 1 and cached it; its shard moved to worker B, which applied seq
    3 into the shared store; the shard came back to A with seq 2, older than what the
    portal holds: stale, not sent, because A forgot its cache when it reconnected."""
    portal = Portal()
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"

    async def scenario() -> str:
        async with open_store(url) as store_a, open_store(url) as store_b:
            a = SyncService(store_a, portal, linger=0.0)  # type: ignore[arg-type]
            b = SyncService(store_b, portal, linger=0.0)  # type: ignore[arg-type]
            await a.handle(a_message(1))
            await b.handle(a_message(3))
            await a.reopen()
            late = a_message(2)
            await a.handle(late)
            await a.close()
            await b.close()
            return late.outcome

    assert asyncio.run(scenario()) == "stale"
    assert portal.upserts == 2  # seq 1 by A, seq 3 by B; never seq 2


def test_the_portal_client_withdraws_a_call_its_guard_refuses_before_any_request() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"error_code": 0, "session": "s", "result": []})

    async def scenario() -> None:
        async with PortalClient(
            "http://portal.test",
            "igate-hcm",
            "secret",
            timeout=5,
            concurrency=1,
            bucket=TokenBucket(1000),
            breaker=CircuitBreaker(),
            transport=httpx.MockTransport(answer),
        ) as client:
            await client.upsert_dossiers(
                "000.00.01.H29", [{"MaHoSo": "x"}], updating=True, guard=lambda: False
            )

    with pytest.raises(Withdrawn):
        asyncio.run(scenario())
    assert [request.url.path for request in requests] == ["/auth"]  # logged in, sent nothing
