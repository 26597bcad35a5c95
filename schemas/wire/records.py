"""The wire's records as the readers walk them, worked out once from the table.

A row of the table names its field by a dotted path ("applicant.name") and its spelling by a
WireType. Splitting the path, choosing the reader and knowing where the field sits in a Dossier
are the same for every item, so they are done here, at import: item after item, the readers
only unpack ready tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, NamedTuple

from schemas.wire.spelling import READERS
from schemas.wire.table import (
    DOSSIER_FIELDS,
    DOSSIER_ITEM,
    DOSSIER_LISTS,
    PROGRESS_CODE,
    PROGRESS_FIELDS,
    PROGRESS_ITEM,
    ListPair,
    Pair,
)


class Field(NamedTuple):
    """A scalar wire field, ready to read."""

    wire: str
    key: str  # the field's name in its model
    read: Callable[[str], object]  # a present wire string to its normalized value
    # The wire flattens the applicant into the dossier: the model it belongs to ("applicant"),
    # or "" for the record's own.
    owner: str
    loc: tuple[str, ...]  # where it sits in a Dossier, which says whether it is personal


Reading = tuple[str, str, Callable[[str], object]]
"""A field's wire name, key and reader: all the quick way needs. A plain tuple, for the quick
way unpacks one for every field of every item, and CPython unpacks a NamedTuple (a subclass
of tuple) several times slower."""


class Record(NamedTuple):
    """What one kind of wire object may hold, and where its objects sit in a Dossier."""

    name: str
    loc: tuple[str, ...]
    known: frozenset[str]  # every field name it may hold
    fields: tuple[Field, ...]  # in the table's order, the order problems are told in
    # The same fields model by model, as the quick way reads them: the record's own, then
    # those of each model flattened into it, as (owner, its fields).
    own: tuple[Reading, ...]
    flattened: tuple[tuple[str, tuple[Reading, ...]], ...]
    lists: tuple[tuple[str, str, Record], ...]  # (wire, key, the record of each entry)


def _field(pair: Pair, at: tuple[str, ...]) -> Field:
    owner, _, key = pair.path.rpartition(".")
    return Field(pair.wire, key, READERS[pair.type], owner, (*at, *pair.path.split(".")))


def _reading(field: Field) -> Reading:
    return field.wire, field.key, field.read


def _record(
    name: str,
    at: tuple[str, ...],
    pairs: Iterable[Pair],
    lists: Iterable[ListPair] = (),
    also: Iterable[str] = (),
) -> Record:
    fields = tuple(_field(pair, at) for pair in pairs)
    own = tuple(_reading(field) for field in fields if not field.owner)
    owners = dict.fromkeys(field.owner for field in fields if field.owner)  # in order, once
    flattened = tuple(
        (owner, tuple(_reading(field) for field in fields if field.owner == owner))
        for owner in owners
    )
    entries = tuple((g.wire, g.path, _record(g.wire, (*at, g.path), g.fields)) for g in lists)
    known = frozenset([*(f.wire for f in fields), *(wire for wire, _, _ in entries), *also])
    return Record(name, at, known, fields, own, flattened, entries)


DOSSIER: Final = _record(DOSSIER_ITEM, (), DOSSIER_FIELDS, DOSSIER_LISTS)
PROGRESS: Final = _record(PROGRESS_ITEM, ("progress",), PROGRESS_FIELDS, also=[PROGRESS_CODE])
