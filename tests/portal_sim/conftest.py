"""Each test gets its own simulator on its own SQLite file, served in a background thread,
and a client logged in to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from portal_sim_support import PortalClient

from bus.portal_sim import InProcessServer, Options


@pytest.fixture
def portal_db(tmp_path: Path) -> Path:
    return tmp_path / "portal-sim.sqlite3"


@pytest.fixture
def portal_url(portal_db: Path) -> Iterator[str]:
    with InProcessServer(Options(db=portal_db)) as url:
        yield url


@pytest.fixture
def client(portal_url: str) -> Iterator[PortalClient]:
    """Logged in as a connector of Hồ Chí Minh City (000.00.01.H29)."""
    client = PortalClient(portal_url)
    client.login()
    yield client
    client.close()
