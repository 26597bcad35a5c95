"""What `bus status` gathers: the topology's queues from the management API, and per unit
the dead letters waiting and each connector's latest heartbeat."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from bus.broker import Connection
from bus.management import Management, vhost_of
from bus.ops.status import ConnectorStatus, latest_heartbeats, queue_status, unit_status
from connectors.heartbeat import Health, heartbeat
from sync.sync_support import bus_in, sync_settings


def health(connector: str, unit: str, outbox: int) -> Health:
    return Health(connector=connector, agency=f"000.00.01.{unit}", unit=unit, kind="rest_poll",
                  outbox=outbox, rejects=1, published=10, cursor=None,
                  started_at=datetime.now(UTC))  # fmt: skip


def test_the_latest_heartbeat_of_each_connector_is_read_from_the_stream(
    vhost: str, tmp_path: Path
) -> None:
    settings = sync_settings(vhost, "http://127.0.0.1:9", tmp_path)

    async def scenario() -> dict[str, ConnectorStatus]:
        async with bus_in(settings) as bus:
            for outbox in (5, 7):
                await bus.publisher.publish(heartbeat(health("igate-h29", "H29", outbox)))
            await bus.publisher.publish(heartbeat(health("mc-g01", "G01", 0)))
            connection = Connection(vhost, name="test-status")
            await connection.start(timeout=10)
            try:
                return await latest_heartbeats(connection)
            finally:
                await connection.close()

    beats = asyncio.run(scenario())
    assert sorted(beats) == ["igate-h29", "mc-g01"]
    assert (beats["igate-h29"].outbox, beats["igate-h29"].rejects) == (7, 1)
    assert beats["igate-h29"].age(datetime.now(UTC)) < 600
    units = unit_status({("H29", "signature"): 2, ("G33", "portal_rejected"): 1}, beats.values())
    assert [(u.unit, u.waiting, [c.connector for c in u.connectors]) for u in units] == [
        ("G01", 0, ["mc-g01"]),
        ("G33", 1, []),
        ("H29", 2, ["igate-h29"]),
    ]
    assert [u.unit for u in unit_status({}, beats.values(), frozenset({"H29"}))] == ["H29"]


def test_queue_status_lists_the_topologys_queues_in_order_with_their_counters(
    vhost: str, management_url: str, tmp_path: Path
) -> None:
    settings = sync_settings(vhost, "http://127.0.0.1:9", tmp_path)

    async def apply() -> None:
        async with bus_in(settings):
            pass

    asyncio.run(apply())
    with Management(management_url) as api:
        queues = queue_status(api.queues(vhost_of(vhost)), settings)
    assert [(q.name, q.kind) for q in queues] == [
        ("portal.sync", "quorum"),
        ("portal.sync.retry.1", "quorum"),
        ("portal.sync.retry.2", "quorum"),
        ("portal.sync.retry.3", "quorum"),
        ("portal.sync.dlq", "quorum"),
        ("dossier.audit", "stream"),
        ("connector.heartbeats", "stream"),
    ]
    assert all(q.consumers == 0 and q.messages == 0 for q in queues)
