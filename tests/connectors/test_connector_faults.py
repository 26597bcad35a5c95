"""A connector never loses a dossier, nor gets one applied twice: killed with SIGKILL at the
worst moments, or cut off from a broker that is down for 30 s.

The connector here is `bus connector run` as a team runs it (a child process, for the kills),
reading a ministry's SQL database; the rest of the pipeline is the real one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pipeline import configured, connector_env, connector_settings, pipeline, written

from broker import BrokerControl
from connectors.failpoints import ENV as FAILPOINT
from connectors.runner import Connector
from connectors.sample.database import LocalDatabase
from connectors.sample.local import LocalSystem

START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
CONNECTOR = "g01-dvc"


async def connector_process(config: Path, vhost: str, **env: str) -> int:
    """Run `bus connector run CONFIG` until it has nothing left to do; its exit code."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus", "connector", "run", str(config), "--until-idle", "1",
        env={**os.environ, **connector_env(vhost, CONNECTOR), **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, errors = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    if process.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(errors.decode(errors="replace")[-2000:])
    return process.returncode


@pytest.mark.parametrize("moment", ["after-outbox-commit", "after-publish"])
def test_a_connector_killed_at_the_worst_moment_loses_nothing_and_applies_nothing_twice(
    vhost: str, tmp_path: Path, moment: str
) -> None:
    local = LocalSystem("000.00.01.G01", 40, seed=31, start=START)
    url = f"sqlite:///{tmp_path / 'g01.sqlite3'}"
    database = LocalDatabase(url)
    database.create_table()
    config = written("sql_poll", tmp_path, url=url)

    async def scenario() -> tuple[int, list[str], list[str]]:
        async with pipeline(vhost, tmp_path, [CONNECTOR]) as bus:
            database.write(local.advance(local.remaining // 2))
            killed = await connector_process(config, vhost, **{FAILPOINT: moment})
            database.write(local.advance(local.remaining))
            await connector_process(config, vhost)
            expected = local.expected()
            return killed, await bus.synced("G01", expected), bus.applied_twice(sorted(expected))

    try:
        killed, differences, twice = asyncio.run(scenario())
    finally:
        database.dispose()
    assert killed == -signal.SIGKILL, "the failpoint was reached"
    assert differences == []
    assert twice == []


def test_a_broker_down_for_30_s_grows_the_outbox_which_drains_when_it_is_back(
    vhost: str, tmp_path: Path, broker_control: BrokerControl
) -> None:
    local = LocalSystem("000.00.01.G01", 40, seed=32, start=START)
    url = f"sqlite:///{tmp_path / 'g01.sqlite3'}"
    database = LocalDatabase(url)
    database.create_table()

    async def scenario() -> tuple[int, list[str]]:
        async with pipeline(vhost, tmp_path, [CONNECTOR]) as bus:
            config = configured("sql_poll", tmp_path / "state", url=url)
            connector = Connector(config, connector_settings(vhost, CONNECTOR))
            task = asyncio.create_task(connector.run())
            try:
                database.write(local.advance(local.remaining // 3))
                await asyncio.sleep(2)
                await asyncio.to_thread(broker_control.stop_app)
                outage_ends = time.monotonic() + 30
                grown = 0
                while time.monotonic() < outage_ends:
                    if not local.finished:
                        database.write(local.advance(20))
                    grown = max(grown, connector.outbox.size())
                    await asyncio.sleep(0.5)
                await asyncio.to_thread(broker_control.start_app)
                database.write(local.advance(local.remaining))
                return grown, await bus.synced("G01", local.expected(), timeout=180)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    try:
        grown, differences = asyncio.run(scenario())
    finally:
        database.dispose()
    assert grown > 0, "events waited in the outbox while the broker was down"
    assert differences == []
