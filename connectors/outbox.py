"""The connector's durable state: outbox, cursor, versions sent, and rejects, in one SQLite file.

The source's cursor moves in the same transaction that stores the events read before it, so
a crash at any moment either keeps both or neither: records are never skipped, at worst read
again (and then recognised by their seq in `sent`, and skipped). The relay publishes outbox
rows and deletes them only once the broker has confirmed them: a crash in between publishes
them again, and the sync service drops the copies by event id and seq.

WAL mode, synchronous=FULL: a webhook answers 202 only after `commit`, so a commit must
survive a power cut, not just a crash. One commit per batch keeps that cheap.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
    dossier_code TEXT NOT NULL, seq INTEGER NOT NULL, occurred_at INTEGER NOT NULL,
    body BLOB NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cursor (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent (
    dossier_code TEXT PRIMARY KEY, seq INTEGER NOT NULL, status INTEGER
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, ref TEXT NOT NULL,
    dossier_code TEXT NOT NULL, reason TEXT NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejects_by_dossier ON rejects (dossier_code);
"""
_CHUNK: Final = 500


@dataclass(frozen=True)
class Pending:
    """An outbox row: the event's JSON and what its AMQP message needs besides."""

    id: int
    event_id: str
    event_type: str
    dossier_code: str
    seq: int
    occurred_at: int  # unix seconds
    body: bytes


@dataclass(frozen=True)
class Reject:
    ref: str
    dossier_code: str
    reason: str
    record: dict[str, Any]  # masked
    at: float = 0.0
    id: int = 0


@dataclass(frozen=True)
class Sent:
    seq: int
    status: int | None


class Outbox:
    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "connector.sqlite3"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def cursor(self, source: str = "") -> str | None:
        row = self._db.execute("SELECT value FROM cursor WHERE source = ?", (source,)).fetchone()
        return None if row is None else str(row[0])

    def sent(self, codes: Iterable[str]) -> dict[str, Sent]:
        """The last version put in the outbox for each of these dossiers it has seen."""
        found: dict[str, Sent] = {}
        unique = sorted(set(codes))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows = self._db.execute(
                "SELECT dossier_code, seq, status FROM sent"
                f" WHERE dossier_code IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update((code, Sent(seq, status)) for code, seq, status in rows)
        return found

    def commit(
        self,
        events: Sequence[tuple[Pending, int | None]],
        rejects: Sequence[Reject],
        cursor: str | None,
        source: str = "",
    ) -> list[Reject]:
        """Store the events (each with the dossier's status), the rejects and the new cursor,
        all or nothing; the rejects that were new. Pending ids are assigned here; the ones
        given are ignored.

        A record refused before, for the same reason and as it was then, is not stored again:
        sources read a record more than once (an inclusive cursor repeats a page's last
        record), and one that stays refused would otherwise add a reject at every poll."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO outbox (event_id, event_type, dossier_code, seq, occurred_at, body,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (p.event_id, p.event_type, p.dossier_code, p.seq, p.occurred_at, p.body, now)
                    for p, _ in events
                ],
            )
            db.executemany(
                "INSERT INTO sent VALUES (?, ?, ?) ON CONFLICT (dossier_code) DO UPDATE"
                " SET seq = excluded.seq, status = excluded.status WHERE excluded.seq > seq",
                [(p.dossier_code, p.seq, status) for p, status in events],
            )
            stored = [r for r in rejects if not self._refused_before(db, r)]
            db.executemany(
                "INSERT INTO rejects (at, ref, dossier_code, reason, record)"
                " VALUES (?, ?, ?, ?, ?)",
                [(now, r.ref, r.dossier_code, r.reason, orjson.dumps(r.record)) for r in stored],
            )
            if cursor is not None:
                db.execute(
                    "INSERT INTO cursor VALUES (?, ?) ON CONFLICT (source)"
                    " DO UPDATE SET value = excluded.value",
                    (source, cursor),
                )
        return stored

    @staticmethod
    def _refused_before(db: sqlite3.Connection, reject: Reject) -> bool:
        if not reject.dossier_code:  # a whole page or file: each refusal is news
            return False
        row = db.execute(
            "SELECT 1 FROM rejects WHERE dossier_code = ? AND reason = ? AND record = ? LIMIT 1",
            (reject.dossier_code, reject.reason, orjson.dumps(reject.record)),
        ).fetchone()
        return row is not None

    def pending(self, limit: int, after: int = 0) -> list[Pending]:
        """The oldest rows not yet confirmed, after row `after`."""
        rows = self._db.execute(
            "SELECT id, event_id, event_type, dossier_code, seq, occurred_at, body FROM outbox"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [Pending(*row) for row in rows]

    def delete_through(self, last: int) -> None:
        """Forget every row up to `last`: the relay confirms rows in id order, so a confirmed
        chunk is all that is left below its last id. One range delete costs a fraction of
        deleting row by row."""
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE id <= ?", (last,))

    def size(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def reject_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM rejects").fetchone()[0])

    def rejects(self, limit: int = 100, dossier_code: str | None = None) -> list[Reject]:
        """The newest rejects first."""
        where, args = ("WHERE dossier_code = ?", [dossier_code]) if dossier_code else ("", [])
        rows = self._db.execute(
            f"SELECT id, at, ref, dossier_code, reason, record FROM rejects {where}"
            " ORDER BY id DESC LIMIT ?",
            [*args, limit],
        )
        return [
            Reject(ref, code, reason, orjson.loads(record), at, id_)
            for id_, at, ref, code, reason, record in rows
        ]
