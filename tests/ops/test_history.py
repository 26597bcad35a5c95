"""`bus replay`: a unit's events from the dossier.audit stream since a moment, back to
portal.sync, read up to where the stream ended when the command started."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ops_support import G01_AGENCY

from bus import headers
from bus.broker import Connection
from bus.errors import Forbidden
from bus.ops import Operator, OpsStore
from bus.ops.history import Resent, resend_history
from bus.topology import SYNC_QUEUE
from connectors.sample import lifecycles
from core.helpers import drain
from sync.sync_support import START, bus_in, sample, sync_settings


def test_history_replay_resends_only_that_units_events_since_the_moment(
    vhost: str, tmp_path: Path
) -> None:
    settings = sync_settings(vhost, "http://127.0.0.1:9", tmp_path)
    before = [life[-1] for life in sample(3, seed=1)]
    after = [life[-1] for life in sample(4, seed=2)]
    other_unit = [life[-1] for life in lifecycles(G01_AGENCY, 2, seed=3, start=START)]
    seen: list[Resent] = []

    async def scenario() -> tuple[datetime, Resent]:
        async with bus_in(settings) as bus:
            await bus.publish(before)
            await asyncio.sleep(1.5)  # the stream seeks by chunk time: keep the two apart
            since = datetime.now(UTC)
            await asyncio.sleep(0.5)
            await bus.publish([*after, *other_unit])
            await asyncio.to_thread(drain, vhost, SYNC_QUEUE)  # what the first sends left
            connection = Connection(vhost, name="test-history")
            await connection.start(timeout=10)
            try:
                with OpsStore(f"sqlite:///{tmp_path / 'ops.sqlite3'}") as store:
                    result = await resend_history(
                        connection, Operator.national("an"), "H29", since, store=store,
                        progress=seen.append,
                    )  # fmt: skip
                    assert [e.count for e in store.audit_entries()] == [len(after)]
            finally:
                await connection.close()
            return since, result

    _, result = asyncio.run(scenario())
    resent = drain(vhost, SYNC_QUEUE)
    assert sorted(r.properties.message_id for r in resent) == sorted(str(e.event_id) for e in after)
    assert (result.sent, result.read, result.failed) == (len(after), len(after) + 2, 0)
    assert seen
    assert seen[-1].read == result.read
    first = resent[0]
    assert first.routing_key == SYNC_QUEUE
    assert first.properties.headers[headers.ORIGINAL_ROUTING_KEY].startswith("H29.")
    assert first.properties.headers[headers.REPLAYED_BY] == "an"
    assert headers.SIGNATURE in first.properties.headers
    assert "x-stream-offset" not in first.properties.headers


def test_a_provincial_operator_cannot_replay_another_units_history(
    vhost: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        connection = Connection(vhost, name="test-history")
        await connection.start(timeout=10)
        try:
            with OpsStore(f"sqlite:///{tmp_path / 'ops.sqlite3'}") as store:
                with pytest.raises(Forbidden):
                    await resend_history(
                        connection, Operator.of_units("binh", {"G01"}), "H29",
                        datetime.now(UTC), store=store,
                    )  # fmt: skip
                [entry] = store.audit_entries()
                assert (entry.actor, entry.unit, entry.outcome) == ("binh", "H29", "forbidden")
        finally:
            await connection.close()

    asyncio.run(scenario())
