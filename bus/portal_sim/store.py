"""The portal's durable state, in one SQLite file.

`history` holds every applied item, as sent, in the order applied: the proof that no dossier
ever went back. Each item is stored there once; `dossiers` (the current record of each dossier)
and `progress` (its steps, keyed by ThoiDiemXuLy, TrangThai, NguoiXuLy) point at the history
row of their current item, which halves what a call writes. `units` counts per unit, and
`sessions` lets a restart keep them as it keeps everything else.

One transaction per call, never per item: in WAL mode with synchronous=NORMAL a commit does
not wait for the disk, so a 100-item call costs one cheap commit. The simulator runs on one
event loop and a call is judged and applied without yielding to another, so calls are applied
one at a time, in the order they arrive.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final, NamedTuple

from bus.portal_sim.answers import ItemCode
from bus.portal_sim.judge import DossierItem, Refusal, StepItem

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY, code TEXT NOT NULL, applied_at REAL NOT NULL, service TEXT NOT NULL,
    is_updating INTEGER, status INTEGER NOT NULL, changed INTEGER NOT NULL, item BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_dossier ON history (code, id);
CREATE TABLE IF NOT EXISTS dossiers (
    code TEXT PRIMARY KEY, unit TEXT NOT NULL, status INTEGER NOT NULL,
    current INTEGER NOT NULL REFERENCES history, version INTEGER NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dossiers_by_unit ON dossiers (unit, code);
CREATE TABLE IF NOT EXISTS progress (
    code TEXT NOT NULL, handled_at TEXT NOT NULL, status INTEGER NOT NULL, handler TEXT NOT NULL,
    current INTEGER NOT NULL REFERENCES history, created_at REAL NOT NULL,
    PRIMARY KEY (code, handled_at, status, handler)
);
CREATE TABLE IF NOT EXISTS units (
    unit TEXT PRIMARY KEY, dossiers INTEGER NOT NULL, updates INTEGER NOT NULL,
    progress INTEGER NOT NULL, rejected INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY, username TEXT NOT NULL, dstcode TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""
_TABLES: Final = ("dossiers", "progress", "history", "units", "sessions")
_PRAGMAS: Final = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "cache_size=-65536",  # 64 MiB
)
_CHUNK: Final = 500  # host parameters per IN (...) list, well under SQLite's limit

_RECORD: Final = (
    "SELECT d.code, d.unit, d.status, h.item, d.version, d.created_at, d.updated_at"
    " FROM dossiers d JOIN history h ON h.id = d.current"
)

DOSSIER_SERVICE: Final = "DongBoHoSoMC"
PROGRESS_SERVICE: Final = "CapNhatTienDoHoSoMC"


class Record(NamedTuple):
    code: str
    unit: str
    status: int
    item: bytes  # the current item, as sent
    version: int  # how many DongBoHoSoMC items were applied to it
    created_at: float
    updated_at: float


class Applied(NamedTuple):
    """One row of a dossier's history."""

    id: int
    applied_at: float
    service: str
    is_updating: bool | None  # None for a progress step
    status: int
    changed: bool  # False when it repeated, byte for byte, what the portal had
    item: bytes


class Store:
    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        for pragma in _PRAGMAS:
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def ping(self) -> None:
        """Return once the file answers a read; raise `sqlite3.Error` if it does not."""
        self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def reset(self) -> None:
        with self._transaction() as db:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")

    # ---- writes: one call, one transaction

    def apply_dossiers(
        self, unit: str, verdicts: Sequence[DossierItem | Refusal], updating: bool, now: float
    ) -> list[ItemCode]:
        """Each item's code, judged in order: creating twice in one call "already exists",
        exactly as if the second had come in a later call."""
        codes: list[ItemCode] = []
        records: list[tuple[object, ...]] = []
        history: list[tuple[object, ...]] = []
        with self._transaction() as db:
            current = self._current(db, {v.code for v in verdicts if type(v) is DossierItem})
            row = self._next_history_id(db)
            for verdict in verdicts:
                if isinstance(verdict, Refusal):
                    codes.append(ItemCode.INVALID)
                    continue
                if (verdict.code in current) != updating:
                    codes.append(ItemCode.MISSING if updating else ItemCode.EXISTS)
                    continue
                codes.append(ItemCode.APPLIED)
                changed = current.get(verdict.code) != verdict.item
                current[verdict.code] = verdict.item
                code, status = verdict.code, verdict.status
                history.append((row, code, now, DOSSIER_SERVICE, updating, status, changed,
                                verdict.item))  # fmt: skip
                records.append((code, unit, status, row, now, now))
                row += 1
            self._add_history(db, history)
            db.executemany(
                "INSERT INTO dossiers VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (code) DO UPDATE"
                " SET status = excluded.status, current = excluded.current,"
                " version = version + 1, updated_at = excluded.updated_at",
                records,
            )
            applied = len(records)
            self._count(
                db,
                unit,
                dossiers=0 if updating else applied,
                updates=applied if updating else 0,
                rejected=len(codes) - applied,
            )
        return codes

    def apply_steps(
        self, unit: str, verdicts: Sequence[StepItem | Refusal], now: float
    ) -> list[ItemCode]:
        """Each step's code. A step the dossier has (same key) is replaced, never repeated."""
        codes: list[ItemCode] = []
        steps: list[tuple[object, ...]] = []
        history: list[tuple[object, ...]] = []
        added = 0
        with self._transaction() as db:
            candidates = {v.code for v in verdicts if type(v) is StepItem}
            known = set(self._current(db, candidates))
            have = self._current_steps(db, known)
            row = self._next_history_id(db)
            for verdict in verdicts:
                if isinstance(verdict, Refusal):
                    codes.append(ItemCode.INVALID)
                    continue
                if verdict.code not in known:
                    codes.append(ItemCode.MISSING)
                    continue
                codes.append(ItemCode.APPLIED)
                key = (verdict.code, verdict.handled_at, verdict.status, verdict.handler)
                before = have.get(key)
                have[key] = verdict.item
                history.append((row, verdict.code, now, PROGRESS_SERVICE, None, verdict.status,
                                before != verdict.item, verdict.item))  # fmt: skip
                if before is None:
                    added += 1
                if before != verdict.item:
                    steps.append((*key, row, now))
                row += 1
            self._add_history(db, history)
            db.executemany(
                "INSERT INTO progress VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (code, handled_at, status, handler)"
                " DO UPDATE SET current = excluded.current",
                steps,
            )
            self._count(db, unit, progress=added, rejected=len(codes) - len(history))
        return codes

    @staticmethod
    def _next_history_id(db: sqlite3.Connection) -> int:
        # Ids are chosen here, inside the write transaction, so that records can point at
        # their history rows without reading each one back.
        next_id: int = db.execute("SELECT coalesce(max(id), 0) + 1 FROM history").fetchone()[0]
        return next_id

    @staticmethod
    def _add_history(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        db.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    @staticmethod
    def _count(db: sqlite3.Connection, unit: str, **counts: int) -> None:
        row = {"dossiers": 0, "updates": 0, "progress": 0, "rejected": 0, **counts}
        if any(row.values()):
            db.execute(
                "INSERT INTO units VALUES (:unit, :dossiers, :updates, :progress, :rejected)"
                " ON CONFLICT (unit) DO UPDATE SET dossiers = dossiers + excluded.dossiers,"
                " updates = updates + excluded.updates, progress = progress + excluded.progress,"
                " rejected = rejected + excluded.rejected",
                {"unit": unit, **row},
            )

    @staticmethod
    def _current(db: sqlite3.Connection, codes: Iterable[str]) -> dict[str, bytes]:
        """The current item of each of these dossiers the portal has."""
        found: dict[str, bytes] = {}
        for chunk in _chunks(sorted(codes)):
            query = f"{_RECORD} WHERE d.code IN ({', '.join('?' * len(chunk))})"
            found.update((row[0], row[3]) for row in db.execute(query, chunk))
        return found

    @staticmethod
    def _current_steps(
        db: sqlite3.Connection, codes: Iterable[str]
    ) -> dict[tuple[str, str, int, str], bytes]:
        found = {}
        for chunk in _chunks(sorted(codes)):
            query = (
                "SELECT p.code, p.handled_at, p.status, p.handler, h.item"
                " FROM progress p JOIN history h ON h.id = p.current"
                f" WHERE p.code IN ({', '.join('?' * len(chunk))})"
            )
            for code, handled_at, status, handler, item in db.execute(query, chunk):
                found[code, handled_at, status, handler] = item
        return found

    # ---- reads

    def record(self, code: str) -> Record | None:
        row = self._db.execute(f"{_RECORD} WHERE d.code = ?", (code,)).fetchone()
        return None if row is None else Record(*row)

    def records(self, unit: str | None, after: str, limit: int) -> list[Record]:
        """A page of records in code order, of one unit or of all, starting after `after`."""
        where = "d.code > :after" if unit is None else "d.unit = :unit AND d.code > :after"
        rows = self._db.execute(
            f"{_RECORD} WHERE {where} ORDER BY d.code LIMIT :limit",
            {"unit": unit, "after": after, "limit": limit},
        )
        return [Record(*row) for row in rows]

    def steps(self, codes: Sequence[str]) -> dict[str, list[bytes]]:
        """The progress items of each dossier, as sent, in the order they happened."""
        found: dict[str, list[bytes]] = {code: [] for code in codes}
        for chunk in _chunks(codes):
            query = (
                "SELECT p.code, h.item FROM progress p JOIN history h ON h.id = p.current"
                f" WHERE p.code IN ({', '.join('?' * len(chunk))})"
                " ORDER BY p.code, p.handled_at, p.created_at, p.rowid"
            )
            for code, item in self._db.execute(query, chunk):
                found[code].append(item)
        return found

    def history(self, code: str) -> list[Applied]:
        rows = self._db.execute(
            "SELECT id, applied_at, service, is_updating, status, changed, item FROM history"
            " WHERE code = ? ORDER BY id",
            (code,),
        )
        return [
            Applied(i, at, svc, None if upd is None else bool(upd), st, bool(ch), item)
            for i, at, svc, upd, st, ch, item in rows
        ]

    def units(self) -> dict[str, dict[str, int]]:
        rows = self._db.execute("SELECT * FROM units ORDER BY unit")
        return {
            unit: {"dossiers": d, "updates": u, "progress": p, "rejected": r}
            for unit, d, u, p, r in rows
        }

    # ---- sessions

    def save_session(self, token: str, username: str, dstcode: str, expires_at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)", (token, username, dstcode, expires_at)
            )

    def forget_sessions(self, tokens: Iterable[str] | None = None) -> None:
        """Forget the given sessions, or all of them."""
        with self._transaction() as db:
            if tokens is None:
                db.execute("DELETE FROM sessions")
            else:
                db.executemany("DELETE FROM sessions WHERE token = ?", ((t,) for t in tokens))

    def sessions(self) -> list[tuple[str, str, str, float]]:
        query = "SELECT token, username, dstcode, expires_at FROM sessions"
        return [(token, user, dstcode, at) for token, user, dstcode, at in self._db.execute(query)]


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
