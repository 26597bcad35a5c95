"""Each connector kind moves its sample local system's dossiers to the portal simulator.

Every part is real: the sample system moves over time while the connector (its example
config from connectors/examples/) reads it, the events go through RabbitMQ to the sync
service, and the simulator must end with exactly each dossier's final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pipeline import configured, connector_settings, pipeline

from connectors.kinds import Webhook
from connectors.runner import Connector
from connectors.sample.database import LocalDatabase
from connectors.sample.files import export
from connectors.sample.local import LocalSystem
from connectors.sample.rest import SampleServer, create_app

START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
Publish = Callable[[list[dict[str, Any]]], Awaitable[None]]
DOSSIERS = 40


def system(agency: str, seed: int) -> LocalSystem:
    return LocalSystem(agency, DOSSIERS, seed=seed, start=START)


@contextlib.asynccontextmanager
async def running(connector: Connector) -> AsyncIterator[asyncio.Task[None]]:
    """The connector running in the background for the block, as `bus connector run`."""
    task = asyncio.create_task(connector.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def move(local: LocalSystem, task: asyncio.Task[None], publish: Publish) -> None:
    """Move the local system to its end, 25 steps at a time, handing each change over."""
    while not local.finished:
        await publish(local.advance(25))
        await asyncio.sleep(0.05)
        if task.done():
            task.result()  # the connector stopped: say why


async def nothing(_: list[dict[str, Any]]) -> None:
    """A source that serves the system as it moves needs no hand-over."""


def run(scenario: Callable[[], Awaitable[list[str]]]) -> list[str]:
    return asyncio.run(scenario())


def test_rest_poll_moves_a_province_systems_dossiers_to_the_portal(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = system("000.00.01.H29", seed=21)
    monkeypatch.setenv("H29_API_KEY", "sample-key")

    async def scenario() -> list[str]:
        with SampleServer(create_app(local, "sample-key")) as url:
            async with pipeline(vhost, tmp_path, ["h29-igate"]) as bus:
                config = configured("rest_poll", tmp_path / "state", url=f"{url}/api/v1/ho-so")
                connector = Connector(config, connector_settings(vhost, "h29-igate"))
                async with running(connector) as task:
                    await move(local, task, nothing)
                    return await bus.synced("H29", local.expected())

    assert run(scenario) == []


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_sql_poll_moves_a_ministry_databases_dossiers_to_the_portal(
    vhost: str, tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    local = system("000.00.01.G01", seed=22)
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'g01.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres")
    database = LocalDatabase(url)
    database.create_table()

    async def scenario() -> list[str]:
        async with pipeline(vhost, tmp_path, ["g01-dvc"]) as bus:
            config = configured("sql_poll", tmp_path / "state", url=url)
            connector = Connector(config, connector_settings(vhost, "g01-dvc"))

            async def write(records: list[dict[str, Any]]) -> None:
                await asyncio.to_thread(database.write, records)

            async with running(connector) as task:
                await move(local, task, write)
                return await bus.synced("G01", local.expected())

    try:
        assert run(scenario) == []
    finally:
        database.dispose()


@pytest.mark.parametrize("file_format", ["csv", "json", "xml"])
def test_file_drop_moves_a_province_systems_exports_to_the_portal(
    vhost: str, tmp_path: Path, file_format: str
) -> None:
    local = system("000.00.01.H31", seed=23)
    folder = tmp_path / "drop"
    folder.mkdir()

    async def scenario() -> list[str]:
        async with pipeline(vhost, tmp_path, ["h31-files"]) as bus:
            config = configured(
                "file_drop", tmp_path / "state", folder=str(folder), settle_seconds=0
            )
            connector = Connector(config, connector_settings(vhost, "h31-files"))

            async def drop(records: list[dict[str, Any]]) -> None:
                export(records, folder, file_format)

            async with running(connector) as task:
                await move(local, task, drop)
                return await bus.synced("H31", local.expected())

    assert run(scenario) == []
    assert not [path for path in folder.iterdir() if path.is_file()], "every file moved on"
    assert not (folder / "rejected").exists()


def test_webhook_takes_a_province_systems_pushes_to_the_portal(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = system("000.00.01.H30", seed=24)
    secret = b"h30 webhook secret"
    monkeypatch.setenv("H30_WEBHOOK_SECRET", secret.decode())

    async def scenario() -> list[str]:
        async with pipeline(vhost, tmp_path, ["h30-hook"]) as bus:
            config = configured("webhook", tmp_path / "state", port=0)
            connector = Connector(config, connector_settings(vhost, "h30-hook"))
            async with httpx.AsyncClient(timeout=30) as http:

                async def push(records: list[dict[str, Any]]) -> None:
                    url = await hook_url(connector)
                    body = orjson.dumps(records)
                    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
                    answer = await http.post(url, content=body, headers={"X-Signature": signature})
                    assert answer.status_code == 202, answer.text

                async with running(connector) as task:
                    await move(local, task, push)
                    return await bus.synced("H30", local.expected())

    assert run(scenario) == []


async def hook_url(connector: Connector) -> str:
    """The webhook's URL once it listens (port 0 takes a free port)."""
    assert isinstance(connector.source, Webhook)
    for _ in range(200):
        with contextlib.suppress(RuntimeError):  # not open yet
            return f"http://127.0.0.1:{connector.source.port}/hooks/dossiers"
        await asyncio.sleep(0.05)
    raise AssertionError("the webhook did not start listening")
