"""The PostgreSQL backend (psycopg 3, async), for several sync processes sharing one state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from bus.errors import StoreUnavailable
from bus.sync.store import Applied, AppliedRow, StateStore
from bus.sync.store.sql import (
    DOUBT,
    SCHEMA,
    SETTLE,
    UPSERT,
    from_columns,
    page_query,
    to_columns,
)

T = TypeVar("T")

_PG_SCHEMA = SCHEMA.format(moment="TIMESTAMPTZ", blob="BYTEA", json="JSONB")
_PG_UPSERT = UPSERT.format(marks=", ".join(["%s"] * 11 + ["%s::jsonb"]))
_PG_DOUBT = DOUBT.format(mark="%s")
_PG_SETTLE = SETTLE.format(mark="%s")

_Connection = psycopg.AsyncConnection[tuple[Any, ...]]

# Two processes creating the same table at once can both pass IF NOT EXISTS and collide;
# a transaction-scoped advisory lock lets one go first.
_PG_SCHEMA_LOCK = 0x646F7373  # "doss"


class PostgresStore(StateStore):
    """One connection, used by one operation at a time: the sync service reads and writes a
    batch at a time, so a pool would only add connections that wait on each other's rows."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()
        self._opened = False

    async def open(self) -> None:
        self._opened = True
        async with self._lock:
            await self._run(self._create_schema)

    async def close(self) -> None:
        self._opened = False
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def _create_schema(self, conn: _Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            await conn.execute(_PG_SCHEMA)

    async def _run(self, operation: Callable[[_Connection], Awaitable[T]]) -> T:
        # Called with the lock held. A lost connection fails this call as transient and is
        # opened again by the next one: the database restarting costs retries, not a restart.
        if not self._opened:
            raise RuntimeError("the state store is not open")
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            return await operation(self._conn)
        except psycopg.OperationalError as error:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            raise StoreUnavailable(f"state store: {error}") from error

    async def ping(self) -> None:
        async def select(conn: _Connection) -> None:
            await conn.execute("SELECT 1 FROM dossier_state LIMIT 1")

        async with self._lock:
            await self._run(select)

    async def get(self, codes: Collection[str]) -> dict[str, Applied]:
        async def select(conn: _Connection) -> dict[str, Applied]:
            cursor = await conn.execute(
                "SELECT dossier_code, seq, progress_count, on_portal FROM dossier_state"
                " WHERE dossier_code = ANY(%s)",
                (list(codes),),
            )
            return {row[0]: Applied(*row) for row in await cursor.fetchall()}

        if not codes:
            return {}
        async with self._lock:
            return await self._run(select)

    async def record(self, rows: Sequence[AppliedRow]) -> None:
        params = [to_columns(row, row.applied_at) for row in rows]
        settled = [(row.dossier_code, row.seq) for row in rows]

        async def upsert(conn: _Connection) -> None:
            # One statement per row, pipelined: a multi-row INSERT ... ON CONFLICT refuses
            # a batch holding the same dossier twice.
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(_PG_UPSERT, params)
                await cursor.executemany(_PG_SETTLE, settled)

        if rows:
            async with self._lock:
                await self._run(upsert)

    async def doubt(self, seqs: Mapping[str, int]) -> None:
        async def upsert(conn: _Connection) -> None:
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(_PG_DOUBT, list(seqs.items()))

        if seqs:
            async with self._lock:
                await self._run(upsert)

    async def doubts(self) -> dict[str, int]:
        async def select(conn: _Connection) -> dict[str, int]:
            cursor = await conn.execute("SELECT dossier_code, seq FROM in_doubt")
            return {str(code): int(seq) for code, seq in await cursor.fetchall()}

        async with self._lock:
            return await self._run(select)

    async def _page(
        self, unit: str, since: datetime | None, after: tuple[datetime, str] | None
    ) -> list[AppliedRow]:
        sql, params = page_query("%s", self.page_size, unit, since, after)

        async def select(conn: _Connection) -> list[AppliedRow]:
            cursor = await conn.execute(sql, params)
            return [from_columns(values, values[5]) for values in await cursor.fetchall()]

        async with self._lock:
            return await self._run(select)
