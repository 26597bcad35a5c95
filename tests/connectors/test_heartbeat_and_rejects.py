"""Operators see a connector's pulse (heartbeats) and what it refused (`bus connector rejects`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pika
from click.testing import CliRunner
from pipeline import configured, connector_settings, written

from bus.cli import main
from bus.topology import EVENTS_EXCHANGE
from connectors.config import load_config
from connectors.runner import Connector
from connectors.sample.database import LocalDatabase
from connectors.sample.local import LocalSystem
from sync.sync_support import bus_in, sync_settings

START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)


def test_a_running_connector_sends_heartbeats_with_its_outbox_and_rejects(
    vhost: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'g01.sqlite3'}"
    with LocalDatabase(url) as database:
        database.create_table()
    config = configured("sql_poll", tmp_path / "state", url=url)
    config = config.model_copy(
        update={"connector": config.connector.model_copy(update={"heartbeat_interval": 0.2})}
    )
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(vhost))) as connection:
        channel = connection.channel()

        async def scenario() -> None:
            async with bus_in(sync_settings(vhost, "http://127.0.0.1:9", tmp_path)):
                channel.queue_declare("watch", exclusive=True)
                channel.queue_bind("watch", EVENTS_EXCHANGE, "G01.heartbeat")
                connector = Connector(config, connector_settings(vhost, "g01-dvc"))
                task = asyncio.create_task(connector.run())
                await asyncio.sleep(1.5)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(scenario())
        method, properties, body = channel.basic_get("watch", auto_ack=True)
    assert method is not None, "a heartbeat arrived"
    beat = json.loads(body)
    assert properties.type == "connector.heartbeat"
    assert (beat["connector"], beat["unit"], beat["kind"]) == ("g01-dvc", "G01", "sql_poll")
    assert beat["outbox"] == 0
    assert beat["rejects"] == 0


def test_rejected_records_are_listed_with_their_reason_and_personal_data_masked(
    tmp_path: Path,
) -> None:
    local = LocalSystem("000.00.01.G01", 3, seed=51, start=START)
    records = local.advance(3)
    broken = {**records[0], "trang_thai": "KHONG_CO_MA"}
    path = written("sql_poll", tmp_path, url=f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    connector = Connector(load_config(path), connector_settings("amqp://unused", "g01-dvc"))
    accepted = connector.ingest([broken, *records[1:]], "test page")
    connector.outbox.close()
    assert accepted.committed == 2
    assert list(accepted.refused) == [0]

    result = CliRunner().invoke(main, ["connector", "rejects", str(path)])
    assert result.exit_code == 0, result.output
    assert "g01-dvc: 1 rejected" in result.output
    assert "local status 'KHONG_CO_MA' has no national code" in result.output
    listed = CliRunner().invoke(main, ["connector", "rejects", str(path), "--json"])
    [reject] = [json.loads(line) for line in listed.output.splitlines()]
    assert reject["record"]["so_giay_to"] != broken["so_giay_to"]
    assert reject["record"]["chu_ho_so"] != broken["chu_ho_so"]
    assert broken["so_giay_to"] not in listed.output
