"""Bad input mixed with good, end to end: where each bad one must end, and proof that every
good one around it reached the portal.

Two ways in:

- straight onto dossier.events, as a connector (or anyone holding a key) could publish:
  `Sender` puts any body there with an event's identity, signed or not; what the bus
  refuses must be in portal.sync.dlq with its `x-bus-reason`;
- through a connector of each kind (its example config from connectors/examples/, pointed at
  the test's own state folder and source): what the connector refuses must be in its reject
  store, as `bus connector rejects` lists it.

Either way the sync service runs as `bus sync run` does and the portal simulator is on the
other side: "applied" means the simulator holds exactly the dossiers expected, nothing more.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bus import headers
from bus.cli import main
from bus.publisher import event_message
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey
from bus.topology import DEAD_LETTER_QUEUE
from connectors.config import ConnectorConfig, load_config
from connectors.runner import Connector
from connectors.sample.local import LocalSystem
from schemas import Dossier, Event
from sync.sync_support import (
    KEY_ID,
    SECRET,
    START,
    Bus,
    DeadLetter,
    Portal,
    bus_in,
    depth_now,
    differences,
    portal_sim,
    sync_service,
    sync_settings,
    take_dead_letters,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"
CONNECTOR_SECRET = b"the bad-input connectors' signing secret"
BODY_LIMIT = 64 * 1024  # the sync service's max_body_bytes in these tests


async def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # quick checks: a moment of the event loop each
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


def portal_differences(
    portal: Portal, unit: str, expected: Mapping[str, Dossier], unexpected: set[str] = frozenset()
) -> list[str]:
    """How the portal's dossiers of `unit` differ from `expected` (empty: exactly those,
    item and steps); dossiers of `unexpected` are looked for in every unit too."""
    problems = differences(portal, expected, unit)
    for code in sorted(unexpected):
        if portal.http.get(f"/_sim/dossiers/{code}").status_code != 404:
            problems.append(f"{code}: on the portal, though only bad input carried it")
    return problems


async def synced(
    portal: Portal,
    unit: str,
    expected: Mapping[str, Dossier],
    unexpected: set[str] = frozenset(),
    timeout: float = 90,
) -> list[str]:
    """Wait until the portal holds exactly `expected` for `unit`; the differences left."""
    deadline = time.monotonic() + timeout
    while True:
        problems = await asyncio.to_thread(portal_differences, portal, unit, expected, unexpected)
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(0.3)


# ---- straight onto dossier.events -----------------------------------------------------------


@dataclass
class Sender:
    """Publishes any body onto dossier.events with the identity of a `base` event, as the
    sample connector of sync_support would (its key signs unless told otherwise)."""

    bus: Bus
    signer: Signer

    async def good(self, events: list[Event]) -> None:
        await self.bus.publish(events)

    async def bad(
        self,
        body: bytes,
        base: Event,
        *,
        sign: bool = True,
        signer: Signer | None = None,
        signed_body: bytes | None = None,
        event_type: str | None = None,
        routing_key: str | None = None,
    ) -> str:
        """Publish `body` in place of `base`'s, under a fresh event id; returns that id."""
        event_id = str(uuid.uuid4())
        message = event_message(base, None)
        message = replace(
            message,
            body=body,
            message_id=event_id,
            type=event_type or message.type,
            routing_key=routing_key or message.routing_key,
        )
        if sign:
            assert message.type is not None
            assert message.app_id is not None
            assert message.timestamp is not None
            signature = (signer or self.signer).sign(
                body if signed_body is None else signed_body,
                event_id,
                message.type,
                message.app_id,
                message.timestamp,
            )
            message = replace(message, headers={**message.headers, **signature})
        await self.bus.publisher.publish(message)
        return event_id


@dataclass
class Published:
    """The sync pipeline of a published-input test: simulator, topology, service, sender."""

    portal: Portal
    settings: Settings
    send: Sender

    @property
    def url(self) -> str:
        return self.settings.amqp_url.get_secret_value()

    async def dead_letters(self, count: int, timeout: float = 60) -> dict[str, DeadLetter]:
        """Wait for `count` dead letters, take them all: by message id."""
        waiting = lambda: depth_now(self.url, DEAD_LETTER_QUEUE) >= count  # noqa: E731
        await eventually(waiting, f"{count} dead letters", timeout=timeout)
        await asyncio.sleep(0.3)  # anything more that was on its way shows up too
        return {str(d.message_id): d for d in await asyncio.to_thread(take_dead_letters, self.url)}


@contextlib.asynccontextmanager
async def published(vhost: str, tmp_path: Path) -> AsyncIterator[Published]:
    with portal_sim(tmp_path) as portal:
        settings = sync_settings(vhost, portal.url, tmp_path, max_body_bytes=BODY_LIMIT)
        async with bus_in(settings) as bus, sync_service(settings):
            signer = Signer(KEY_ID, "hmac-sha256", SECRET)
            yield Published(portal, settings, Sender(bus, signer))


def reason_of(dead: DeadLetter) -> tuple[str, str]:
    return str(dead.headers.get(headers.REASON)), str(dead.headers.get(headers.ERROR))


# ---- through a connector --------------------------------------------------------------------


def connector_key_id(name: str) -> str:
    return f"{name}-badinput"


def connector_config(kind: str, folder: Path, /, **source: Any) -> tuple[Path, ConnectorConfig]:
    """The example config of `kind` written into `folder` with its state there (for `bus
    connector rejects`), and loaded with `source` values changed (for the connector); the
    arguments are positional only, `folder` being a source setting too (file_drop's)."""
    text = (EXAMPLES / f"{kind}.toml").read_text(encoding="utf-8")
    state = json.dumps(str(folder / "state"))
    text = re.sub(r'(?m)^state_dir = ".*"$', f"state_dir = {state}", text)
    text = re.sub(r"(?m)^poll_interval = .*$", "poll_interval = 0.2", text)
    path = folder / f"{kind}.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    return path, config.model_copy(update={"source": {**config.source, **source}})


def connector_settings(amqp_url: str, name: str, metrics_port: int | None = None) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        signing_key_id=connector_key_id(name),
        signing_key=base64.b64encode(CONNECTOR_SECRET).decode(),
        reconnect_max_delay=0.5,
        metrics_port=metrics_port,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Through:
    """A connector's whole pipeline: its config file, the connector, and the portal."""

    path: Path
    connector: Connector
    portal: Portal
    settings: Settings

    def rejects(self) -> list[dict[str, Any]]:
        """What `bus connector rejects CONFIG --json` lists, newest first."""
        result = CliRunner().invoke(main, ["connector", "rejects", str(self.path), "--json"])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    def rejects_shown(self) -> str:
        """What `bus connector rejects CONFIG` prints for a person."""
        result = CliRunner().invoke(main, ["connector", "rejects", str(self.path)])
        assert result.exit_code == 0, result.output
        return result.output


@contextlib.asynccontextmanager
async def through(
    vhost: str, tmp_path: Path, kind: str, /, *, metrics_port: int | None = None, **source: Any
) -> AsyncIterator[Through]:
    """Simulator, topology and sync service, and the connector of `kind` running in the
    background, for the block (its /readyz on `metrics_port`, if given). The connector is
    stopped (its outbox closed) at the end."""
    path, config = connector_config(kind, tmp_path, **source)
    name = config.connector.name
    keys = tmp_path / "keys.json"
    key = VerifyKey(connector_key_id(name), name, "hmac-sha256", CONNECTOR_SECRET)
    KeyRing([key]).save(keys)
    with portal_sim(tmp_path) as portal:
        settings = sync_settings(vhost, portal.url, tmp_path, verify_keys_file=keys)
        async with bus_in(settings), sync_service(settings):
            connector = Connector(config, connector_settings(vhost, name, metrics_port))
            task = asyncio.create_task(connector.run(), name="connector")
            try:
                yield Through(path, connector, portal, settings)
                if task.done():
                    task.result()  # the connector stopped by itself: say why
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


# ---- a local system's final rows, some spoiled ----------------------------------------------


Rows = list[dict[str, Any]]


def final_rows(agency: str, count: int, seed: int) -> tuple[Rows, dict[str, Dossier]]:
    """The `count` dossiers of a sample local system, played to their end: each one's final
    row, and each one's final dossier (what the portal must hold)."""
    local = LocalSystem(agency, count, seed=seed, start=START)
    local.advance(local.remaining)
    return [dict(row) for row in local.records()], local.expected()


def good_only(expected: Mapping[str, Dossier], spoiled: set[str]) -> dict[str, Dossier]:
    """What the portal must hold once the rows of `spoiled` dossiers were refused."""
    return {code: dossier for code, dossier in expected.items() if code not in spoiled}


async def rejected(through: Through, count: int, timeout: float = 60) -> None:
    """Wait until the running connector has stored `count` rejects (records refused, and
    inputs refused whole)."""
    outbox = through.connector.outbox
    await eventually(lambda: outbox.reject_count() >= count, f"{count} rejects", timeout=timeout)
