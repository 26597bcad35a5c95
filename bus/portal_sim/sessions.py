"""Sessions: `/auth` opens one, every other call must carry a live one.

Checked in memory on every call, written to the store only when opened or dropped, so a
restart keeps them. A session lives the TTL in force when it was opened; changing the TTL at
run time affects sessions opened after. To end the others at once, drop them all: that is the
"the portal may drop sessions" of docs/portal-api.md.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

from bus.portal_sim.store import Store

_PRUNE_AT = 1024


class Session(NamedTuple):
    token: str
    username: str
    dstcode: str
    expires_at: float  # seconds since the epoch: a restart must not lengthen it


class Check(Enum):
    LIVE = "live"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # never opened, or dropped


class Sessions:
    def __init__(self, store: Store, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self._store = store
        self._clock = clock
        saved = [Session(*row) for row in store.sessions()]
        now = clock()
        self._live = {s.token: s for s in saved if s.expires_at > now}
        store.forget_sessions([s.token for s in saved if s.token not in self._live])

    def open(self, username: str, dstcode: str) -> Session:
        if len(self._live) >= _PRUNE_AT:
            self._prune()
        session = Session(secrets.token_urlsafe(24), username, dstcode, self._clock() + self.ttl)
        self._store.save_session(*session)
        self._live[session.token] = session
        return session

    def check(self, token: str) -> Check:
        session = self._live.get(token)
        if session is None:
            return Check.UNKNOWN
        if session.expires_at <= self._clock():
            # Forgotten in memory only: the store's copy goes at the next start or drop.
            del self._live[token]
            return Check.EXPIRED
        return Check.LIVE

    def drop_all(self) -> int:
        """End every session now; the number ended."""
        dropped = len(self._live)
        self._live.clear()
        self._store.forget_sessions()
        return dropped

    def live(self) -> int:
        now = self._clock()
        return sum(session.expires_at > now for session in self._live.values())

    def _prune(self) -> None:
        # Expired sessions are forgotten when next used; a client that never comes back
        # would leave its session here forever.
        now = self._clock()
        self._live = {t: s for t, s in self._live.items() if s.expires_at > now}
