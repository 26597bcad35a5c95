"""Fixtures of the connector tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.sample.database import LocalDatabase
from connectors.sample.local import LocalSystem

START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A ministry's SQL database (SQLite) holding 30 finished dossiers."""
    local = LocalSystem("000.00.01.G01", 30, seed=43, start=START)
    url = f"sqlite:///{tmp_path / 'g01.sqlite3'}"
    with LocalDatabase(url) as db:
        db.create_table()
        db.write(local.advance(local.remaining))
    return url
