"""The sample local system as a SQL database: one `ho_so` row per dossier, as a vendor keeps it.

Scalar columns carry the local names and values; each nested list is one JSON text column,
as many vendors store what they never query. Times stay the vendor's text, naive local
"YYYY-MM-DD HH:MM:SS", not TIMESTAMP columns: the same text then comes back from SQLite and
PostgreSQL alike, and `cap_nhat_luc`, fixed-width with microseconds, orders and compares as
text the same way in both, so one polling query serves either.

    db = LocalDatabase("sqlite:///g01.sqlite3")   # or postgresql+psycopg://...
    db.create_table()
    db.write(system.advance(100))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from connectors.sample.local import (
    COLUMNS,
    INTEGERS,
    KEY,
    LIST_COLUMNS,
    TIMES,
    UPDATED_AT,
)

TABLE: Final = "ho_so"
CHUNK: Final = 200  # rows per statement: well under SQLite's limit of bound parameters


def _column(name: str) -> Column[Any]:
    if name == KEY:
        return Column(name, String(50), primary_key=True)
    if name == UPDATED_AT:
        return Column(name, String(26), nullable=False, index=True)  # the polling cursor
    if name in TIMES:
        return Column(name, String(19))
    if name in INTEGERS:
        return Column(name, Integer)
    return Column(name, Text)  # free text, local codes, and the lists' JSON


metadata: Final = MetaData()
ho_so: Final = Table(TABLE, metadata, *(_column(name) for name in COLUMNS))


def create_table(engine: Engine) -> None:
    """Create `ho_so` (and its cursor index) unless it exists."""
    metadata.create_all(engine)


def to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a row: the lists as JSON text, the rest unchanged."""
    row = dict(record)
    for column in LIST_COLUMNS:
        row[column] = json.dumps(record[column], ensure_ascii=False, separators=(",", ":"))
    return row


def from_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as the record it was written from."""
    record = {name: row[name] for name in COLUMNS}
    for column in LIST_COLUMNS:
        record[column] = json.loads(record[column])
    return record


class LocalDatabase:
    """The `ho_so` table at `url` (any SQLAlchemy URL; SQLite and PostgreSQL are tried)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def create_table(self) -> None:
        create_table(self.engine)

    def write(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace each record's row, by ma_ho_so, in one transaction; returns how
        many rows were written. Of a dossier given twice (changed twice), the later one wins."""
        # One statement may not touch a row twice (PostgreSQL refuses): keep each key's last.
        latest = {record[KEY]: record for record in records}
        rows = [to_row(record) for record in latest.values()]
        with self.engine.begin() as connection:
            for first in range(0, len(rows), CHUNK):
                connection.execute(self._upsert(rows[first : first + CHUNK]))
        return len(rows)

    def read(self) -> list[dict[str, Any]]:
        """Every row as a record, oldest cap_nhat_luc first."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(ho_so).order_by(ho_so.c[UPDATED_AT]))
            return [from_row(row._mapping) for row in rows]

    def _upsert(self, rows: Sequence[dict[str, Any]]) -> Insert:
        # Both dialects spell it ON CONFLICT ... DO UPDATE, but SQLAlchemy has no portable
        # construct for it: pick the dialect's.
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            statement: postgresql.Insert | sqlite.Insert = postgresql.insert(ho_so)
        elif dialect == "sqlite":
            statement = sqlite.insert(ho_so)
        else:
            raise NotImplementedError(
                f"no upsert for {dialect}: the sample knows SQLite and PostgreSQL"
            )
        statement = statement.values(rows)
        changes = {name: statement.excluded[name] for name in COLUMNS if name != KEY}
        return statement.on_conflict_do_update(index_elements=[KEY], set_=changes)

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> LocalDatabase:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()
