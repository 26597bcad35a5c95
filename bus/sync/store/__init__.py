"""Per-dossier state: the last event applied to the portal for each dossier.

The sync service reads it to drop stale events (invariant 2) and to know what the portal
already holds; `bus reconcile` reads it back, unit by unit, to compare with the portal and
re-send what went missing, so each row keeps the message that was applied.

A call that failed may still have reached the portal (it timed out, or its answer was cut
off): until an event at least as new is applied, the dossiers it carried are "in doubt", and
no older event of theirs may be sent, lest a late copy overwrite what the portal may hold.
The store keeps those doubts too (`doubt`, `doubts`), so a sync service that is killed and
started again still knows them; applying settles them (`record`).

The guard is in SQL as well as in the service: the upsert replaces a row only with a higher
`seq`, so two writers racing (two sync processes, a retried batch overtaken by a newer one)
can never regress a dossier, whatever order their transactions commit in. An equal `seq` is
the same event again and keeps the first record.

Two backends behind one interface, chosen by URL (`open_store`):
- `sqlite:///relative/file` or `sqlite:////absolute/file` (SQLAlchemy's spelling): one file in
  WAL mode with synchronous=NORMAL, so a commit costs no fsync (a checkpoint now and then
  does). `SqliteStore` says which calls run on the event loop and which on its thread.
- `postgresql://...`: psycopg 3, async, for several sync processes sharing one state.
Sync workers sharing the shards must share one store (PostgreSQL, or one SQLite file on one
machine): a shard that moves brings its dossiers' state with it only through the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Applied:
    """What the guard needs to know about a dossier."""

    dossier_code: str
    seq: int
    progress_count: int  # progress items the portal already holds for it
    on_portal: bool  # the portal has the dossier: the next upsert is an update


@dataclass(frozen=True, slots=True)
class AppliedRow:
    """One dossier's state after an event was applied, with the message that carried the
    event, enough to publish it again as it was. `record` writes it, `applied` reads it."""

    dossier_code: str
    unit: str
    seq: int
    progress_count: int
    applied_at: datetime
    body: bytes
    message_id: str | None = None
    type: str | None = None
    app_id: str | None = None
    timestamp: int | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    on_portal: bool = True

    def __post_init__(self) -> None:
        require_aware(self.applied_at, "applied_at")


StoredEvent = AppliedRow  # what `applied` yields is exactly what `record` took


class StateStore(ABC):
    """The store's interface; `open_store` picks a backend."""

    page_size = 500  # rows `applied` reads at a time: bounded memory, no long transaction

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create the schema if it is not there yet."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Return once the store answers a trivial read of its table; raise if it cannot
        (`StoreUnavailable`, or RuntimeError when it is not open): the readiness check."""

    @abstractmethod
    async def get(self, codes: Collection[str]) -> dict[str, Applied]:
        """The state of each of `codes` that has one; unknown dossiers are left out."""

    @abstractmethod
    async def record(self, rows: Sequence[AppliedRow]) -> None:
        """Write every row in one transaction; a row never replaces a higher seq. A row
        settles its dossier's doubt up to its seq."""

    @abstractmethod
    async def doubt(self, seqs: Mapping[str, int]) -> None:
        """Remember that events up to these seqs may have reached the portal, per dossier;
        a doubt never goes down."""

    @abstractmethod
    async def doubts(self) -> dict[str, int]:
        """Every dossier still in doubt, with its seq: few, since applying settles them."""

    @abstractmethod
    async def _page(
        self, unit: str, since: datetime | None, after: tuple[datetime, str] | None
    ) -> list[AppliedRow]:
        """Up to `page_size` rows of `unit` applied at or after `since`, strictly after the
        (applied_at, dossier_code) key `after`, in that key's order."""

    async def applied(self, unit: str, since: datetime | None = None) -> AsyncIterator[AppliedRow]:
        """Every dossier of `unit` last applied at or after `since` (all of them when None),
        oldest first, each with the message that was applied."""
        if since is not None:
            require_aware(since, "since")
        after: tuple[datetime, str] | None = None
        while True:
            page = await self._page(unit, since, after)
            for row in page:
                yield row
            if len(page) < self.page_size:
                return
            after = (page[-1].applied_at, page[-1].dossier_code)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def open_store(url: str) -> StateStore:
    """The store a URL names, not yet opened: `sqlite:///file` or `postgresql://...`."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from bus.sync.store.sqlite import SqliteStore

        return SqliteStore(_sqlite_path(url))
    if scheme in {"postgresql", "postgres"}:
        from bus.sync.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"state store URL must start with sqlite:// or postgresql://, not {scheme}://")


def _sqlite_path(url: str) -> str:
    # sqlite:///a.db is the relative file a.db, sqlite:////var/a.db the absolute /var/a.db,
    # as in SQLAlchemy. No database in memory: the state must outlive the process, and the
    # store's two connections must see the same data.
    path = unquote(url.removeprefix("sqlite://").removeprefix("/"))
    if not path or path == ":memory:":
        raise ValueError(f"a SQLite state store needs a file, e.g. sqlite:///state.db: {url}")
    return path


def require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
