"""/metrics, /healthz and /readyz: of the probe server itself, and of each long-running
service as it runs for real (the sync service against the broker and the simulator, a
connector reading a ministry's database, the simulator). Every /metrics is held to the
naming conventions of test_metrics_names.py."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from test_metrics_names import naming_problems

from bus.management import in_vhost
from bus.portal_sim import InProcessServer, Options
from bus.probes import NotReady, ProbeServer, probe_routes, service_port
from bus.settings import Settings
from bus.sync.runner import run_sync
from connectors.config import ConnectorConfig, load_config
from connectors.runner import Connector
from connectors.sample.database import LocalDatabase
from connectors.sample.local import LocalSystem
from sync.sync_support import bus_in, portal_sim, sample, sync_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"
START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def ok() -> None:
    pass


async def refused() -> None:
    raise NotReady("the broker said no")


async def silent() -> None:
    await asyncio.sleep(60)


def exposition() -> str:
    """The process registry's /metrics text, as a probe server serves it."""
    return generate_latest(REGISTRY).decode()


def value(text: str, sample: str, **labels: str) -> float:
    """The value of one sample of an exposition, 0 when it is not there."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def until_ready(client: httpx.AsyncClient, timeout: float = 30) -> dict[str, Any]:
    """Wait for /readyz to say 200; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get("/readyz")
        if answer.status_code == 200 or time.monotonic() > deadline:
            body: dict[str, Any] = answer.json()
            return body
        await asyncio.sleep(0.1)


@asynccontextmanager
async def running(job: Coroutine[Any, Any, None], port: int) -> AsyncIterator[httpx.AsyncClient]:
    """`job` (a service's run) in the background, and a client of its probe port once it
    answers /healthz."""
    task = asyncio.create_task(job)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        try:
            deadline = time.monotonic() + 30
            while True:
                if task.done():
                    task.result()
                    raise AssertionError("the service stopped by itself")
                with suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "no /healthz within 30 s"
                await asyncio.sleep(0.05)
            yield client
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)


# ---- the probe server -----------------------------------------------------------------------


def test_the_probe_server_is_ready_when_every_check_passes() -> None:
    async def scenario() -> tuple[int, Any, int, str]:
        async with ProbeServer({"broker": ok, "store": ok}) as url, httpx.AsyncClient() as http:
            ready = await http.get(f"{url}/readyz")
            health = await http.get(f"{url}/healthz")
            return ready.status_code, ready.json(), health.status_code, health.text

    status, body, health_status, health = asyncio.run(scenario())
    assert (status, body) == (200, {"ready": True, "checks": {"broker": "ok", "store": "ok"}})
    assert (health_status, health) == (200, "ok")


def test_readyz_is_503_naming_each_failing_check_and_why_while_healthz_stays_200() -> None:
    checks = {"broker": refused, "store": silent, "source": ok}

    async def scenario() -> tuple[int, Any, int]:
        async with ProbeServer(checks, timeout=0.2) as url, httpx.AsyncClient() as http:
            ready = await http.get(f"{url}/readyz")
            return ready.status_code, ready.json(), (await http.get(f"{url}/healthz")).status_code

    status, body, health = asyncio.run(scenario())
    assert status == 503
    assert body == {
        "ready": False,
        "checks": {
            "broker": "the broker said no",
            "store": "no answer within 0.2 s",
            "source": "ok",
        },
    }
    assert health == 200


def test_the_probe_server_serves_the_process_metrics_under_conventional_names() -> None:
    async def scenario() -> str:
        async with ProbeServer({}) as url, httpx.AsyncClient() as http:
            return (await http.get(f"{url}/metrics")).raise_for_status().text

    text = asyncio.run(scenario())
    assert "# TYPE bus_messages_total counter" in text
    assert naming_problems(text) == []


def test_a_taken_port_fails_the_probe_servers_start() -> None:
    async def scenario(port: int) -> None:
        async with ProbeServer({}, port=port), ProbeServer({}, port=port):
            pass

    with pytest.raises(OSError, match="in use"):
        asyncio.run(scenario(free_port()))


def test_a_services_default_port_is_given_up_when_taken_but_a_chosen_one_is_kept() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert service_port(Settings(), None, port) is None
        assert service_port(Settings(metrics_port=port), None, 1) == port
        assert service_port(Settings(metrics_port=1), port, 2) == port
    assert service_port(Settings(), None, port) == port


def test_probe_routes_mount_in_a_services_own_app() -> None:
    app = Starlette(routes=probe_routes({"store": refused}))

    async def scenario() -> tuple[str, Any, str]:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            health = (await client.get("/healthz")).text
            ready = (await client.get("/readyz")).json()
            return health, ready, (await client.get("/metrics")).text

    health, ready, metrics = asyncio.run(scenario())
    assert health == "ok"
    assert ready == {"ready": False, "checks": {"store": "the broker said no"}}
    assert naming_problems(metrics) == []


# ---- the portal simulator -------------------------------------------------------------------


def test_the_simulator_counts_calls_by_service_and_code_and_is_ready_while_its_store_answers(
    tmp_path: Path,
) -> None:
    with InProcessServer(Options(db=tmp_path / "portal.sqlite3")) as url, httpx.Client() as http:
        http.post(f"{url}/auth", json={"username": "x", "password": "wrong"})
        http.put(f"{url}/_sim/faults", json={"throttle_next": 1}).raise_for_status()
        http.post(f"{url}/integration", json={})
        text = http.get(f"{url}/metrics").raise_for_status().text
        ready = http.get(f"{url}/readyz")
        health = http.get(f"{url}/healthz").json()

    assert naming_problems(text) == []
    assert value(text, "bus_portal_sim_calls_total", endpoint="auth", code="400") == 1
    assert value(text, "bus_portal_sim_calls_total", endpoint="integration", code="429") == 1
    assert value(text, "bus_portal_sim_faults_total", kind="throttle") == 1
    assert (ready.status_code, ready.json()) == (200, {"ready": True, "checks": {"store": "ok"}})
    assert health == {"status": "ok", "down": False}


# ---- the sync service -----------------------------------------------------------------------


def test_the_sync_service_is_ready_on_its_broker_and_store_and_exports_its_flow(
    vhost: str, tmp_path: Path
) -> None:
    port = free_port()
    events = [event for events in sample(20, seed=5) for event in events]

    async def scenario(portal_url: str) -> tuple[dict[str, Any], str]:
        settings = sync_settings(vhost, portal_url, tmp_path, metrics_port=port)
        async with bus_in(settings) as bus, running(run_sync(settings), port) as client:
            ready = await until_ready(client)
            await bus.publish(events)
            deadline = time.monotonic() + 60
            while True:
                text = (await client.get("/metrics")).text
                done = value(text, "bus_sync_lag_seconds_count", unit="H29")
                if done > 0 or time.monotonic() > deadline:
                    return ready, text
                await asyncio.sleep(0.1)

    with portal_sim(tmp_path) as portal:
        ready, text = asyncio.run(scenario(portal.url))
    assert ready == {"ready": True, "checks": {"broker": "ok", "store": "ok"}}
    assert naming_problems(text) == []
    assert value(text, "bus_sync_lag_seconds_count", unit="H29") > 0
    assert value(text, "bus_sync_updates_total", unit="H29", outcome="applied") > 0
    assert value(text, "bus_messages_total", queue="portal.sync", unit="H29") > 0


def test_the_sync_service_without_its_broker_is_alive_but_not_ready_and_says_why(
    vhost: str, tmp_path: Path
) -> None:
    port = free_port()
    nowhere = in_vhost(vhost, "no-such-vhost")
    settings = sync_settings(nowhere, "http://127.0.0.1:9", tmp_path, metrics_port=port)

    async def scenario() -> tuple[int, httpx.Response]:
        async with running(run_sync(settings), port) as client:
            return (await client.get("/healthz")).status_code, await client.get("/readyz")

    health, ready = asyncio.run(scenario())
    assert health == 200
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "broker": "the connection to the broker is not open",
        "store": "ok",
    }


# ---- a connector ----------------------------------------------------------------------------


def sql_connector(tmp_path: Path, database: str) -> ConnectorConfig:
    config = load_config(EXAMPLES / "sql_poll.toml")
    table = config.connector.model_copy(
        update={"state_dir": tmp_path / "state", "poll_interval": 0.2}
    )
    return config.model_copy(
        update={"connector": table, "source": {**config.source, "url": database}}
    )


def ministry_database(tmp_path: Path, dossiers: int) -> str:
    """The sample ministry's SQL database (G01), with its dossiers' whole lives in it."""
    local = LocalSystem("000.00.01.G01", dossiers, seed=41, start=START)
    url = f"sqlite:///{tmp_path / 'g01.sqlite3'}"
    database = LocalDatabase(url)
    database.create_table()
    database.write(local.advance(local.remaining))
    database.dispose()
    return url


def connector_settings(amqp_url: str, port: int) -> Settings:
    return Settings(amqp_url=amqp_url, allow_unsigned=True, reconnect_max_delay=0.5,
                    metrics_port=port)  # fmt: skip


def test_a_connector_is_ready_on_broker_outbox_and_source_and_exports_what_it_published(
    vhost: str, tmp_path: Path
) -> None:
    port = free_port()
    config = sql_connector(tmp_path, ministry_database(tmp_path, 15))
    labels = {"unit": "G01", "connector": "g01-dvc"}
    started = time.time()

    async def scenario() -> tuple[dict[str, Any], str, Connector]:
        connector = Connector(config, connector_settings(vhost, port))
        async with bus_in(Settings(amqp_url=vhost)), running(connector.run(), port) as client:
            ready = await until_ready(client)
            deadline = time.monotonic() + 60
            while True:
                text = (await client.get("/metrics")).text
                drained = connector.read and not connector.outbox.size()
                if drained or time.monotonic() > deadline:
                    return ready, text, connector
                await asyncio.sleep(0.1)

    published, stored = "bus_connector_events_published_total", "bus_connector_records_total"
    before = exposition()  # the process's counters: other tests' connectors counted too
    ready, text, connector = asyncio.run(scenario())
    assert ready == {"ready": True, "checks": {"broker": "ok", "outbox": "ok", "source": "ok"}}
    assert naming_problems(text) == []
    assert connector.committed > 0
    assert value(text, published, **labels) - value(before, published, **labels) == (
        connector.committed
    )
    assert (
        value(text, stored, outcome="stored", **labels)
        - value(before, stored, outcome="stored", **labels)
        == connector.committed
    )
    assert value(text, "bus_connector_outbox_events", **labels) == 0
    assert value(text, "bus_connector_last_poll_timestamp_seconds", **labels) >= started


def test_a_connector_without_broker_or_source_is_alive_but_not_ready_and_says_why(
    vhost: str, tmp_path: Path
) -> None:
    port = free_port()
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"  # no dossier table: every read fails
    config = sql_connector(tmp_path, empty)
    settings = connector_settings(in_vhost(vhost, "no-such-vhost"), port)

    async def scenario() -> tuple[int, httpx.Response]:
        async with running(Connector(config, settings).run(), port) as client:
            deadline = time.monotonic() + 30
            while True:
                ready = await client.get("/readyz")
                if ready.json()["checks"]["source"] != "ok" or time.monotonic() > deadline:
                    return (await client.get("/healthz")).status_code, ready
                await asyncio.sleep(0.1)

    health, ready = asyncio.run(scenario())
    assert health == 200
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["broker"] == "the connection to the broker is not open"
    assert checks["outbox"] == "ok"
    assert "ho_so" in checks["source"]
