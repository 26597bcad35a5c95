"""Where operators' work is kept: the dead letters collected from portal.sync.dlq, and the
audit log of what operators did with them.

SQLAlchemy Core over SQLite (`sqlite:///file`, the default) or PostgreSQL
(`postgresql://user@host/db`, for several consoles sharing one store). One row per
dead-lettered event, keyed by its message id: an event that is replayed and fails again
comes back to its own row, waiting again, its replay count kept and its new failure added to
its history. Methods are synchronous; async callers run them in a thread.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bus.ops.audit import AuditEntry
from bus.ops.deadletter import DeadLetter, Failure, plain

metadata = sa.MetaData()

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("dossier_code", sa.String(200)),
    sa.Column("event_type", sa.String(100)),
    sa.Column("connector", sa.String(200)),
    sa.Column("reason", sa.String(100), nullable=False),
    sa.Column("error_class", sa.String(200), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_failure", sa.DateTime(timezone=True)),
    sa.Column("last_failure", sa.DateTime(timezone=True)),
    sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("replays", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("routing_key", sa.String(300), nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("timestamp", sa.BigInteger),
    sa.Column("content_type", sa.String(100)),
    sa.Column("history", sa.JSON, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("changed_by", sa.String(200)),
    sa.Index("dead_letters_by_status", "status", "unit", "reason"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("unit", sa.String(32)),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(50), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("audit_log_by_unit", "unit", "at"),
)


def engine_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, the driver the project ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


class OpsStore:
    def __init__(self, url: str) -> None:
        self.engine: Engine = sa.create_engine(engine_url(url), pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> OpsStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    # ---- dead letters --------------------------------------------------------------------

    def put(self, letters: Sequence[DeadLetter]) -> None:
        """Store what was just taken from the dead-letter queue, in one transaction. An id
        already known is waiting again, with this failure added to its history (the same
        failure delivered twice, as at-least-once can, is added once)."""
        with self._begin() as connection:
            for letter in letters:
                row = connection.execute(
                    sa.select(dead_letters.c.history, dead_letters.c.replays)
                    .where(dead_letters.c.id == letter.id)
                    .with_for_update()
                ).first()
                values = _row_values(letter)
                if row is None:
                    connection.execute(dead_letters.insert().values(id=letter.id, **values))
                    continue
                history = [Failure.model_validate(item) for item in row.history]
                new = [f for f in letter.history if not any(_same(f, old) for old in history)]
                values["history"] = [_failure_json(f) for f in (*history, *new)]
                values["replays"] = max(int(row.replays), letter.replays)
                if not new:  # a duplicate delivery: keep the row as it stands
                    continue
                connection.execute(
                    dead_letters.update().where(dead_letters.c.id == letter.id).values(**values)
                )

    def get(self, id: str) -> DeadLetter | None:
        with self._begin() as connection:
            row = connection.execute(sa.select(dead_letters).where(dead_letters.c.id == id)).first()
        return None if row is None else _letter(row._mapping)

    def find(
        self,
        *,
        units: Collection[str] | None = None,
        reason: str | None = None,
        status: str | None = "waiting",
        ids: Collection[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[DeadLetter]:
        """Dead letters, latest first; `units` None means every unit."""
        query = _filtered(sa.select(dead_letters), units, reason, status, ids)
        query = query.order_by(dead_letters.c.dead_lettered_at.desc(), dead_letters.c.id)
        query = query.limit(limit).offset(offset)
        with self._begin() as connection:
            return [_letter(row._mapping) for row in connection.execute(query)]

    def ids(
        self,
        *,
        units: Collection[str] | None = None,
        reason: str | None = None,
        status: str | None = "waiting",
    ) -> list[str]:
        query = _filtered(sa.select(dead_letters.c.id), units, reason, status, None)
        with self._begin() as connection:
            return [str(row.id) for row in connection.execute(query.order_by(dead_letters.c.id))]

    def units_of(self, ids: Collection[str]) -> dict[str, str]:
        """The unit of each known id."""
        query = sa.select(dead_letters.c.id, dead_letters.c.unit).where(
            dead_letters.c.id.in_(list(ids))
        )
        with self._begin() as connection:
            return {str(row.id): str(row.unit) for row in connection.execute(query)}

    def counts(
        self, *, units: Collection[str] | None = None, status: str = "waiting"
    ) -> dict[tuple[str, str], int]:
        """How many dead letters per (unit, reason)."""
        query = _filtered(
            sa.select(dead_letters.c.unit, dead_letters.c.reason, sa.func.count()),
            units,
            None,
            status,
            None,
        ).group_by(dead_letters.c.unit, dead_letters.c.reason)
        with self._begin() as connection:
            return {(str(u), str(r)): int(n) for u, r, n in connection.execute(query)}

    def mark_replayed(self, id: str, replays: int, by: str) -> bool:
        """Mark a replayed letter, unless its replay already failed and came back (its row
        then holds this replay's number already): True when it was marked."""
        with self._begin() as connection:
            done = connection.execute(
                dead_letters.update()
                .where(dead_letters.c.id == id, dead_letters.c.replays < replays)
                .values(status="replayed", replays=replays, changed_at=_now(), changed_by=by)
            )
        return bool(done.rowcount)

    def mark_discarded(self, ids: Collection[str], by: str) -> int:
        """Discard those still waiting; how many were."""
        with self._begin() as connection:
            done = connection.execute(
                dead_letters.update()
                .where(dead_letters.c.id.in_(list(ids)), dead_letters.c.status == "waiting")
                .values(status="discarded", changed_at=_now(), changed_by=by)
            )
        return int(done.rowcount)

    # ---- the audit log -------------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        with self._begin() as connection:
            connection.execute(audit_log.insert().values(**entry.model_dump()))

    def audit_entries(
        self,
        *,
        units: Collection[str] | None = None,
        actor: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """The latest entries first; with `units`, those about these units only."""
        query = sa.select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        if units is not None:
            query = query.where(audit_log.c.unit.in_(list(units)))
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        with self._begin() as connection:
            rows = connection.execute(query.limit(limit).offset(offset))
            return [_entry(row._mapping) for row in rows]


def _filtered(
    query: Any,
    units: Collection[str] | None,
    reason: str | None,
    status: str | None,
    ids: Collection[str] | None,
) -> Any:
    if units is not None:
        query = query.where(dead_letters.c.unit.in_(list(units)))
    if reason is not None:
        query = query.where(dead_letters.c.reason == reason)
    if status is not None:
        query = query.where(dead_letters.c.status == status)
    if ids is not None:
        query = query.where(dead_letters.c.id.in_(list(ids)))
    return query


def _row_values(letter: DeadLetter) -> dict[str, Any]:
    values = letter.model_dump(exclude={"id", "history"})
    values["status"] = "waiting"
    values["headers"] = plain(letter.headers)
    values["history"] = [_failure_json(f) for f in letter.history]
    values["changed_at"] = letter.dead_lettered_at
    values["changed_by"] = None
    return values


def _failure_json(failure: Failure) -> dict[str, Any]:
    return failure.model_dump(mode="json")


def _same(a: Failure, b: Failure) -> bool:
    return (a.reason, a.last_failure, a.attempts, a.error) == (
        b.reason,
        b.last_failure,
        b.attempts,
        b.error,
    )


def _letter(row: Any) -> DeadLetter:
    values = dict(row)
    values.pop("changed_at")
    values.pop("changed_by")
    for name in ("first_failure", "last_failure", "dead_lettered_at"):
        values[name] = _aware(values[name])
    values["history"] = tuple(values["history"])
    return DeadLetter.model_validate(values)


def _entry(row: Any) -> AuditEntry:
    values = {key: value for key, value in row.items() if key != "id"}
    return AuditEntry.model_validate({**values, "at": _aware(values["at"])})


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL: the console reads while `collect` writes; a busy writer is waited for, not fatal.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
