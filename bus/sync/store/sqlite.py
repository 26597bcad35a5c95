"""The SQLite backend: one file, WAL mode, synchronous=NORMAL, so a commit costs no fsync (a
checkpoint now and then does). Several sync workers on one machine may share the file: WAL
lets them read while one writes, each write takes the lock for its whole transaction
(BEGIN IMMEDIATE), and a busy lock is waited for (busy_timeout), not failed on."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Microseconds since the epoch, UTC, sort as time does; SQLite has no moment type.
_SQLITE_SCHEMA = SCHEMA.format(moment="INTEGER", blob="BLOB", json="TEXT")
_SQLITE_UPSERT = UPSERT.format(marks=", ".join("?" * 12))
_SQLITE_DOUBT = DOUBT.format(mark="?")
_SQLITE_SETTLE = SETTLE.format(mark="?")
_SQLITE_MAX_PARAMS = 500  # codes per IN (...): far below SQLite's variable limit


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


class SqliteStore(StateStore):
    """Two connections to one file. Reads and writes of the guard run on the event loop: a
    batch's upsert is about a millisecond, and on a thread it would wait for the GIL while
    the loop is busy, each row again (sqlite3 lets it go around every step). What can take
    long runs on the store's own thread with the other connection: the pages of applied(),
    and the WAL checkpoints, turned off for the writer (a checkpoint in a commit would make
    that commit wait for an fsync) and run there now and then instead. In WAL mode readers
    see every committed write and a passive checkpoint never blocks the writer."""

    checkpoint_every = 2000  # rows written between two checkpoints

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None  # on the loop
        self._thread_db: sqlite3.Connection | None = None  # on the thread
        self._thread: ThreadPoolExecutor | None = None
        self._since_checkpoint = 0
        self._checkpoint: asyncio.Future[None] | None = None

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="state-store")
        self._db = self._connect()
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        # Made on the thread that uses it: sqlite3 connections stay on theirs.
        self._thread_db = await self._on_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; record() says BEGIN itself.
        db = sqlite3.connect(self.path, isolation_level=None)
        # First: sync workers sharing the file start together, and another process writing
        # (or turning WAL on) must make this one wait, not fail.
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SQLITE_SCHEMA)
        return db

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._thread_db is not None:
            thread_db, self._thread_db = self._thread_db, None
            await self._on_thread(thread_db.close)
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None

    async def _on_thread(self, function: Callable[[], T]) -> T:
        if self._thread is None:
            raise RuntimeError("the state store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, function)
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"state store: {error}") from error

    def _loop_connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the state store is not open")
        return self._db

    def _thread_connection(self) -> sqlite3.Connection:
        if self._thread_db is None:
            raise RuntimeError("the state store is not open")
        return self._thread_db

    async def ping(self) -> None:
        try:
            self._loop_connection().execute("SELECT 1 FROM dossier_state LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"state store: {error}") from error

    async def get(self, codes: Collection[str]) -> dict[str, Applied]:
        db, wanted, found = self._loop_connection(), list(codes), {}
        try:
            for start in range(0, len(wanted), _SQLITE_MAX_PARAMS):
                chunk = wanted[start : start + _SQLITE_MAX_PARAMS]
                marks = ",".join("?" * len(chunk))
                for code, seq, progress, on_portal in db.execute(
                    "SELECT dossier_code, seq, progress_count, on_portal FROM dossier_state"
                    f" WHERE dossier_code IN ({marks})",
                    chunk,
                ):
                    found[code] = Applied(code, seq, progress, bool(on_portal))
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"state store: {error}") from error
        return found

    async def record(self, rows: Sequence[AppliedRow]) -> None:
        if not rows:
            return
        params = [to_columns(row, _micros(row.applied_at)) for row in rows]
        settled = [(row.dossier_code, row.seq) for row in rows]
        self._write((_SQLITE_UPSERT, params), (_SQLITE_SETTLE, settled))
        self._since_checkpoint += len(params)
        if self._since_checkpoint >= self.checkpoint_every and self._checkpoint is None:
            self._since_checkpoint = 0
            self._checkpoint = asyncio.ensure_future(self._checkpoint_on_thread())

    async def doubt(self, seqs: Mapping[str, int]) -> None:
        if seqs:
            self._write((_SQLITE_DOUBT, list(seqs.items())))

    async def doubts(self) -> dict[str, int]:
        try:
            rows = self._loop_connection().execute("SELECT dossier_code, seq FROM in_doubt")
            return {str(code): int(seq) for code, seq in rows}
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"state store: {error}") from error

    def _write(self, *statements: tuple[str, Sequence[Sequence[object]]]) -> None:
        """The statements, each with its rows of parameters, in one transaction."""
        db = self._loop_connection()
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way through
            try:
                for sql, params in statements:
                    db.executemany(sql, params)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"state store: {error}") from error

    async def _checkpoint_on_thread(self) -> None:
        db = self._thread_connection()
        try:
            await self._on_thread(lambda: db.execute("PRAGMA wal_checkpoint(PASSIVE)").close())
        finally:
            self._checkpoint = None

    async def _page(
        self, unit: str, since: datetime | None, after: tuple[datetime, str] | None
    ) -> list[AppliedRow]:
        since_ = None if since is None else _micros(since)
        after_ = None if after is None else (_micros(after[0]), after[1])
        sql, params = page_query("?", self.page_size, unit, since_, after_)
        db = self._thread_connection()
        rows = await self._on_thread(lambda: db.execute(sql, params).fetchall())
        return [from_columns(values, _EPOCH + values[5] * _MICROSECOND) for values in rows]
