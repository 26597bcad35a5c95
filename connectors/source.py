"""What a connector reads from: the local system, seen as records and a cursor.

A record is one dossier as the local system spells it: a flat mapping of its own field names
to its own values (text, numbers, local times, local status codes; nested lists as lists of
mappings, or as JSON text in systems that keep them in one column). Turning a record into a
contract event is the mapping's job (`connectors.mapping`), never the source's.

Two shapes of source:

- `PollSource`: the connector asks, `fetch(cursor)`, and gets the next records in cursor
  order with the cursor after them. The connector commits the records (as outbox rows) and
  the new cursor in one transaction, then calls `committed(batch)`: a file source moves its
  file only then. Fetching again from an old cursor must be harmless (records already sent
  are recognised by their `seq` and skipped), so a source may use "at or after" cursors.
- `PushSource`: the local system calls us (a webhook). `serve(accept)` runs until cancelled;
  `accept(records, ref)` returns once the records are committed to the outbox, with the
  reason of each one refused.

A team with an unusual system subclasses one of these; `connectors.kinds` has the built-in
ones, each with its settings model (the `[source]` table of the connector's config file).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

Record = Mapping[str, Any]


class SourceError(Exception):
    """The source cannot be read now (unreachable, refused, malformed answer). The message
    is for a person: it says which source and what to check."""


class SourceSettings(BaseModel):
    """Base of each kind's `[source]` table: unknown keys are mistakes, and say so."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Batch:
    """Records in cursor order, and where to resume after them (None: the cursor stays).

    `ref` names where the records came from (a page URL, a file name) for rejects and logs;
    `refs` may name each record apart (a row number); `problem` says why a whole unit of input
    (a file that is not CSV) was refused, in which case `records` is empty."""

    records: Sequence[Record]
    cursor: str | None
    ref: str = ""
    refs: Sequence[str] = ()
    problem: str | None = None
    done: bool = False  # True when the source has nothing newer right now
    context: dict[str, Any] = field(default_factory=dict)  # the source's own bookkeeping


class Source(ABC):
    kind: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings

    async def open(self) -> None:  # noqa: B027 - optional hook, as are close and check
        """Acquire connections; raise SourceError when the source cannot be reached."""

    async def close(self) -> None:  # noqa: B027
        """Release what `open` acquired."""

    async def check(self) -> None:  # noqa: B027
        """Prove the source can be read (for `bus connector validate`); raise SourceError."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming the source for people, without secrets."""


class PollSource(Source):
    @abstractmethod
    async def fetch(self, cursor: str | None, limit: int) -> Batch:
        """Up to `limit` records at or after `cursor` (None: from the beginning)."""

    async def committed(self, batch: Batch) -> None:
        """The batch and its cursor are durable in the outbox: finish with its input."""

    async def sample(self, limit: int) -> list[Record]:
        """A few real records, for `bus connector validate` to try the mapping on."""
        return list((await self.fetch(None, limit)).records)


@dataclass(frozen=True)
class Accepted:
    """What `accept` did with pushed records: how many were committed, and the reason of each
    refused one (by its position in the push)."""

    committed: int
    refused: dict[int, str]


Accept = Callable[[Sequence[Record], str], Awaitable[Accepted]]


class PushSource(Source):
    @abstractmethod
    async def serve(self, accept: Accept) -> None:
        """Take pushes until cancelled; each push is answered only after `accept` returns."""
