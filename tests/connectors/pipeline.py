"""The whole pipeline for connector tests: sample local system → connector → RabbitMQ → sync
service → portal simulator, every part real, in the test's process (or the connector as a
`bus connector run` child process, for the crash tests).

The example configs of `connectors/examples/` are the ones tests run: a test only points
them at its own state folder and its own source (a port, a database, a folder).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.settings import Settings
from bus.signing import KeyRing, VerifyKey
from connectors.config import ConnectorConfig, load_config
from schemas import Dossier
from sync.sync_support import (
    Portal,
    bus_in,
    differences,
    portal_sim,
    sync_service,
    sync_settings,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"
SECRET = b"the connectors' test signing secret"


def example(kind: str) -> Path:
    return EXAMPLES / f"{kind}.toml"


def configured(kind: str, state_dir: Path, **source: Any) -> ConnectorConfig:
    """The example config of `kind`, with its state in `state_dir` and `source` changed."""
    config = load_config(example(kind))
    table = config.connector.model_copy(update={"state_dir": state_dir, "poll_interval": 0.2})
    return config.model_copy(update={"connector": table, "source": {**config.source, **source}})


def written(kind: str, folder: Path, **source: str) -> Path:
    """The example config of `kind` as a file in `folder`, its state there too and its
    `[source]` values replaced: for a connector run as a child process."""
    text = example(kind).read_text(encoding="utf-8")
    text = re.sub(r'(?m)^state_dir = ".*"$', f'state_dir = "{folder / "state"}"', text)
    text = re.sub(r"(?m)^poll_interval = .*$", "poll_interval = 0.2", text)
    head, table, rest = text.partition("\n[source]\n")
    body, header, tail = rest.partition("\n[")
    for key, value in source.items():
        body, found = re.subn(rf'(?m)^{key} = ".*"$', f"{key} = {json.dumps(value)}", body)
        assert found == 1, f"{key} not in the [source] of {kind}.toml"
    text = head + table + body + header + tail
    path = folder / f"{kind}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def key_id(connector: str) -> str:
    return f"{connector}-test"


def connector_settings(amqp_url: str, connector: str) -> Settings:
    """What a connector reads from its environment in the tests (see `connector_env`)."""
    values = connector_env(amqp_url, connector).items()
    return Settings(**{key.removeprefix("BUS_").lower(): value for key, value in values})


def connector_env(amqp_url: str, connector: str) -> dict[str, str]:
    return {
        "BUS_AMQP_URL": amqp_url,
        "BUS_SIGNING_KEY_ID": key_id(connector),
        "BUS_SIGNING_KEY": base64.b64encode(SECRET).decode(),
        "BUS_RECONNECT_MAX_DELAY": "0.5",
        "BUS_LOG_FORMAT": "json",
    }


def keys_file(folder: Path, connectors: list[str]) -> Path:
    keys = [VerifyKey(key_id(name), name, "hmac-sha256", SECRET) for name in connectors]
    return KeyRing(keys).save(folder / "keys.json")


@dataclass
class Pipeline:
    portal: Portal
    sync: Settings  # the sync service's settings, holding the vhost's URL

    @property
    def amqp_url(self) -> str:
        return self.sync.amqp_url.get_secret_value()

    def differences(self, unit: str, expected: dict[str, Dossier]) -> list[str]:
        """How the portal's dossiers of `unit` differ from `expected` (empty: the same)."""
        return differences(self.portal, expected, unit)

    async def synced(
        self, unit: str, expected: dict[str, Dossier], timeout: float = 120
    ) -> list[str]:
        """Wait until the portal holds exactly `expected` for `unit`; the differences left."""
        deadline = time.monotonic() + timeout
        while True:
            problems = await asyncio.to_thread(self.differences, unit, expected)
            if not problems or time.monotonic() > deadline:
                return problems
            await asyncio.sleep(0.5)

    def applied_twice(self, codes: list[str]) -> list[str]:
        """Dossiers to which the portal applied the same item twice in a row."""
        twice = []
        for code in codes:
            items = self.portal.history(code)
            if any(a == b for a, b in itertools.pairwise(items)):
                twice.append(code)
        return twice


@contextlib.asynccontextmanager
async def pipeline(vhost: str, tmp_path: Path, connectors: list[str]) -> AsyncIterator[Pipeline]:
    """Simulator, topology and sync service (accepting these connectors' keys) for the block."""
    with portal_sim(tmp_path) as portal:
        settings = sync_settings(
            vhost, portal.url, tmp_path, verify_keys_file=keys_file(tmp_path, connectors)
        )
        async with bus_in(settings), sync_service(settings):
            yield Pipeline(portal, settings)
