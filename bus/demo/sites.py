"""The sample local systems, each served the way its kind is read (a REST API, an SQL table,
file drops), their connectors as the examples configure them, the connectors' signing keys,
and the work directory all of it lives in."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import connectors
from bus.settings import Settings
from bus.signing import KeyRing, VerifyKey
from connectors.config import ConnectorConfig, load_config
from connectors.runner import Connector
from connectors.sample.database import LocalDatabase
from connectors.sample.files import FORMATS, export
from connectors.sample.local import KEY, LocalSystem
from connectors.sample.rest import PATH, SampleServer, create_app

EXAMPLES: Final = Path(connectors.__file__).parent / "examples"
START: Final = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)  # the sample lifecycles' first day
TICK: Final = 0.2  # seconds between two moves of the local systems, and the connectors' polls

HandOver = Callable[[list[dict[str, Any]]], Awaitable[None]]


@contextlib.contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="dossier-bus-demo-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Sample:
    example: str  # connectors/examples/<example>.toml
    agency: str
    seed: int
    source: str  # how its connector reads it, for people


SAMPLES: Final = (
    Sample("rest_poll", "000.00.01.H29", 29, "REST API"),
    Sample("sql_poll", "000.00.01.G01", 1, "SQL table"),
    Sample("file_drop", "000.00.01.H31", 31, "file drop"),
)


@dataclass
class Site:
    """One local system, the way it hands its changes to its connector, and the connector."""

    sample: Sample
    system: LocalSystem
    connector: Connector
    config_file: Path  # the connector's config as it runs, for `bus connector` commands
    where: str  # its source, for people
    hand_over: HandOver
    # Dossier code → the wall time its latest version was handed to the connector's source.
    handed: dict[str, float] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return self.system.unit

    async def advance(self, steps: int) -> int:
        records = self.system.advance(steps)
        await self.hand_over(records)
        now = time.time()
        for record in records:
            self.handed[record[KEY]] = now
        return len(records)


async def _nothing(_: list[dict[str, Any]]) -> None:
    """The REST sample serves the system as it moves: nothing to hand over."""


def open_site(
    sample: Sample,
    dossiers: int,
    workdir: Path,
    settings: Settings,
    stack: contextlib.ExitStack,
) -> Site:
    """The sample's local system, served the way its kind reads it, and its connector."""
    system = LocalSystem(sample.agency, dossiers, seed=sample.seed, start=START)
    hand_over: HandOver = _nothing
    if sample.example == "rest_poll":
        api_key = secrets.token_urlsafe(16)
        os.environ["H29_API_KEY"] = api_key  # where rest_poll.toml says the key is
        url = stack.enter_context(SampleServer(create_app(system, api_key))) + PATH
        source: dict[str, Any] = {"url": url}
        where = url
    elif sample.example == "sql_poll":
        path = workdir / f"{system.unit.lower()}.sqlite3"
        database = LocalDatabase(f"sqlite:///{path}")
        stack.callback(database.dispose)
        database.create_table()

        async def write(records: list[dict[str, Any]]) -> None:
            await asyncio.to_thread(database.write, records)

        hand_over, source, where = write, {"url": f"sqlite:///{path}"}, f"table ho_so in {path}"
    else:
        folder = workdir / f"{system.unit.lower()}-drop"
        folder.mkdir()
        formats = itertools.cycle(FORMATS)  # each export in the next format: csv, json, xml

        async def drop(records: list[dict[str, Any]]) -> None:
            export(records, folder, next(formats))

        # Exports are written whole, then renamed: no need to wait for them to settle.
        hand_over, source = drop, {"folder": str(folder), "settle_seconds": 0}
        where = f"exports (csv, json, xml) in {folder}"
    config = _configured(sample.example, workdir / "connectors", source)
    config_file = _config_file(sample.example, config, source, workdir)
    return Site(sample, system, Connector(config, settings), config_file, where, hand_over)


def _configured(example: str, state_root: Path, source: dict[str, Any]) -> ConnectorConfig:
    """The example config, its state in the demo's folder and its source the demo's own."""
    config = load_config(EXAMPLES / f"{example}.toml")
    state_dir = state_root / config.connector.name
    table = config.connector.model_copy(update={"state_dir": state_dir, "poll_interval": TICK})
    return config.model_copy(update={"connector": table, "source": {**config.source, **source}})


def _config_file(
    example: str, config: ConnectorConfig, source: dict[str, Any], workdir: Path
) -> Path:
    """The example's text with the same changes, written into the work directory, so that
    `bus connector rejects FILE` (and the other `bus connector` commands) see the demo's
    connector."""
    changes = {
        "connector": {
            "state_dir": str(config.connector.state_dir),
            "poll_interval": config.connector.poll_interval,
        },
        "source": dict(source),
    }
    lines: list[str] = []
    table, end = "", 0  # the table being read; where its last key line ends in `lines`
    text = (EXAMPLES / f"{example}.toml").read_text(encoding="utf-8")
    for line in [*text.splitlines(), "[end]"]:
        if line.startswith("["):
            # Keys the example's table lacks go after its last key, not after the comments
            # that introduce the next table.
            extra = changes.get(table, {})
            lines[end:end] = [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
            extra.clear()
            table = line.partition("]")[0].strip("[ ")
        key = line.partition("=")[0].strip()
        if key in changes.get(table, {}):
            line = f"{key} = {json.dumps(changes[table].pop(key))}"
        lines.append(line)
        if "=" in line and not line.startswith("#"):
            end = len(lines)
    path = workdir / f"{config.connector.name}.toml"
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    return path


def write_keys(folder: Path, names: list[str]) -> dict[str, tuple[str, str]]:
    """A fresh HMAC key per connector in `keys.json`, the registry the sync service checks
    signatures with; returns each connector's (key id, base64 secret)."""
    keys = {name: VerifyKey(f"{name}-demo", name, "hmac-sha256", secrets.token_bytes(32))
            for name in names}  # fmt: skip
    KeyRing(list(keys.values())).save(folder / "keys.json")
    return {name: (key.key_id, key.entry()["secret"]) for name, key in keys.items()}
