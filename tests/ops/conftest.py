"""Fixtures of the operator tools' tests: the portal simulator, and settings for a sync
service whose failures reach the dead-letter queue in a fraction of a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.settings import Settings
from sync.sync_support import Portal, portal_sim, sync_settings


@pytest.fixture
def ops_portal(tmp_path: Path) -> Iterator[Portal]:
    with portal_sim(tmp_path) as portal:
        yield portal


@pytest.fixture
def ops_settings(vhost: str, ops_portal: Portal, tmp_path: Path) -> Settings:
    """Two attempts, 0.2 s apart, then the dead-letter queue; no breaker in the way (an
    open one holds messages instead of failing them); the operator store in tmp_path."""
    return sync_settings(
        vhost,
        ops_portal.url,
        tmp_path,
        max_attempts=2,
        retry_delays=(0.2,),
        breaker_threshold=10_000,
        ops_url=f"sqlite:///{tmp_path / 'ops.sqlite3'}",
    )
