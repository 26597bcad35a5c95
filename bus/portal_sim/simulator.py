"""The simulator's state, shared by its endpoints: options, store, sessions, faults, stats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bus.portal_sim.faults import Faults
from bus.portal_sim.sessions import Sessions
from bus.portal_sim.stats import Stats
from bus.portal_sim.store import Store

DEFAULT_PASSWORD = "dossier-bus"
DEFAULT_SESSION_TTL = 1800.0


@dataclass(frozen=True)
class Options:
    db: str | Path = "portal-sim.sqlite3"
    password: str = DEFAULT_PASSWORD  # accepted for any username
    session_ttl: float = DEFAULT_SESSION_TTL  # seconds; changeable at run time


class Simulator:
    """Opened when the app starts (in the thread that serves it: SQLite wants that), closed
    when it stops."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.faults = Faults()
        self.stats = Stats()
        self._store: Store | None = None
        self._sessions: Sessions | None = None

    def open(self) -> None:
        self._store = Store(self.options.db)
        self._sessions = Sessions(self._store, self.options.session_ttl)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = self._sessions = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the portal simulator is not started")
        return self._store

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:
            raise RuntimeError("the portal simulator is not started")
        return self._sessions

    def reset(self) -> None:
        """Back to a new, empty portal, as on a new file: no dossier, session, fault or count."""
        self.store.reset()
        self.sessions.drop_all()
        self.sessions.ttl = self.options.session_ttl
        self.faults.clear()
        self.stats.reset()
