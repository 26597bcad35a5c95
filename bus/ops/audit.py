"""The audit log: every operator action, who did it, when, on what, and how many."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

# What an entry's `action` says.
REPLAY = "replay"
DISCARD = "discard"
HISTORY_REPLAY = "history_replay"
SHOW = "show"
LIST = "list"

# What its `outcome` says.
DONE = "done"
FORBIDDEN = "forbidden"
FAILED = "failed"


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    actor: str
    action: str
    unit: str | None  # None: an action not tied to one unit
    target: str  # the ids acted on, or the filter that chose them
    count: int
    outcome: str
    detail: str = ""
