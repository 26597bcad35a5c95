"""A real pipeline for the console's browser tests, every part running for real:

- a scratch virtual host holding the whole topology;
- the sync service as `bus sync run` in a process of its own (its /metrics on a free port),
  with retries short and few, so that a portal outage dead-letters within a second;
- the portal simulator in this process (`InProcessServer`);
- signed events for the demo's three units (H29, G01, H31), published by the bus's own
  publisher, each unit with its own connector key;
- the console itself (`Console(...).app()`) served by uvicorn in a thread, scraping the sync
  service's /metrics and collecting the dead-letter queue into an ops store of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx

from bus.broker import Connection
from bus.console.accounts import Accounts, hash_password
from bus.console.app import Console
from bus.declarations import apply_topology
from bus.ops import OpsStore
from bus.portal_sim import InProcessServer, Options
from bus.publisher import EventPublisher, Publisher
from bus.serving import BackgroundServer
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey
from bus.topology import topology
from connectors.sample import lifecycles
from schemas import Event

UNITS: Final = ("H29", "G01", "H31")  # the demo's units
START: Final = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
PASSWORD: Final = "correct horse battery staple"
NATIONAL: Final = "national"
HANOI: Final = "hanoi"  # a provincial operator: H29 only


def agency(unit: str) -> str:
    return f"000.00.01.{unit}"


def connector(unit: str) -> str:
    return f"sample-{unit.lower()}"  # the sample lifecycles' connector for the unit


def secret(unit: str) -> bytes:
    return f"the {unit} connector's test secret".encode()


def sample(unit: str, count: int, seed: int) -> list[list[Event]]:
    return lifecycles(agency(unit), count, seed=seed, start=START)


def wrong_due_date(event: Event) -> Event:
    """The event with its dossier due a day before it was received: the contract takes it,
    the portal refuses it."""
    dossier = event.payload.dossier
    assert dossier.received_at is not None
    wrong = dossier.model_copy(update={"due_at": dossier.received_at - timedelta(days=1)})
    return event.model_copy(update={"payload": event.payload.model_copy(update={"dossier": wrong})})


def run_async(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to the end on an event loop of its own thread: Playwright's sync API keeps
    a loop running in the test's thread, where asyncio.run is refused."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def write_accounts(path: Path) -> Path:
    path.write_text(
        f'[operators.{NATIONAL}]\npassword = "{hash_password(PASSWORD)}"\nunits = "*"\n\n'
        f'[operators.{HANOI}]\npassword = "{hash_password(PASSWORD)}"\nunits = ["H29"]\n',
        "utf-8",
    )
    return path


@dataclass
class Pipeline:
    settings: Settings
    portal_url: str
    console_url: str
    ops: OpsStore
    portal: httpx.Client

    def publish(self, events: Iterable[Event]) -> None:
        run_async(_publish(self.settings, list(events)))

    def faults(self, **changes: Any) -> None:
        self.portal.put("/_sim/faults", json=changes).raise_for_status()

    def held(self, unit: str) -> set[str]:
        """The dossier codes the portal holds for `unit`."""
        page = self.portal.get("/_sim/dossiers", params={"unit": unit, "limit": 10_000}).json()
        return {record["code"] for record in page["dossiers"]}

    def history(self, code: str) -> list[dict[str, Any]]:
        answer = self.portal.get(f"/_sim/dossiers/{code}")
        return list(answer.json()["history"]) if answer.status_code == 200 else []


async def _publish(settings: Settings, events: list[Event]) -> None:
    connection = Connection(settings.amqp_url.get_secret_value(), name="test-connectors")
    await connection.start(timeout=10)
    try:
        publisher = Publisher(connection)
        signed = {
            unit: EventPublisher(
                publisher, Signer(f"{connector(unit)}-key", "hmac-sha256", secret(unit))
            )
            for unit in UNITS
        }
        confirms = [await signed[event.unit].send(event) for event in events]
        await asyncio.gather(*confirms)
    finally:
        await connection.close()


async def _topology(settings: Settings) -> None:
    connection = Connection(settings.amqp_url.get_secret_value(), name="test-topology")
    await connection.start(timeout=10)
    try:
        _, mismatches = await apply_topology(connection, topology(settings))
        assert not mismatches, mismatches
    finally:
        await connection.close()


@contextlib.contextmanager
def sync_process(settings: Settings, folder: Path) -> Iterator[str]:
    """`bus sync run` in a process of its own; the URL of its /metrics."""
    port = free_port()
    env = {
        **os.environ,
        "BUS_AMQP_URL": settings.amqp_url.get_secret_value(),
        "BUS_PORTAL_URL": settings.portal_url,
        "BUS_STATE_URL": f"sqlite:///{folder / 'state.sqlite3'}",
        "BUS_VERIFY_KEYS_FILE": str(settings.verify_keys_file),
        "BUS_RETRY_DELAYS": "[0.2]",
        "BUS_MAX_ATTEMPTS": "2",
        "BUS_BREAKER_THRESHOLD": "1000",  # a portal outage dead-letters instead of waiting
        "BUS_SYNC_RATE": "500",
        "BUS_LOG_FORMAT": "json",
        "BUS_METRICS_PORT": str(port),
    }
    log = (folder / "sync.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bus", "sync", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the sync service ready", lambda: _ready(url, process), timeout=60)
        yield f"{url}/metrics"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"bus sync run exited with {process.returncode}; see its log")
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def pipeline(vhost: str, folder: Path) -> Iterator[Pipeline]:
    keys = KeyRing(
        [VerifyKey(f"{connector(u)}-key", connector(u), "hmac-sha256", secret(u)) for u in UNITS]
    ).save(folder / "keys.json")
    with InProcessServer(Options(db=folder / "portal.sqlite3")) as portal_url:
        settings = Settings(
            amqp_url=vhost,
            portal_url=portal_url,
            verify_keys_file=keys,
            retry_delays=(0.2,),
            max_attempts=2,
            ops_url=f"sqlite:///{folder / 'ops.sqlite3'}",
            console_secret="the console's test secret",
        )
        run_async(_topology(settings))
        with sync_process(settings, folder) as metrics_url:
            settings = settings.model_copy(update={"console_metrics_urls": (metrics_url,)})
            accounts = Accounts.load(write_accounts(folder / "accounts.toml"))
            console = Console(settings, accounts)
            with (
                BackgroundServer(console.app(), name="console", lifespan="on") as console_url,
                OpsStore(settings.ops_url.get_secret_value()) as ops,
                httpx.Client(base_url=portal_url, timeout=30) as portal,
            ):
                yield Pipeline(settings, portal_url, console_url, ops, portal)
