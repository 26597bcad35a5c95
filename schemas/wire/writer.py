"""Writing wire items from a dossier.

The model is already valid, so writing checks nothing and builds plain dicts without pydantic:
the sync service writes thousands of items per second. Absent values are written "", and
lists are always written, as [] when empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Final

from schemas.dossier import Dossier, Progress
from schemas.wire.spelling import WRITERS
from schemas.wire.table import (
    DOSSIER_FIELDS,
    DOSSIER_LISTS,
    PROGRESS_CODE,
    PROGRESS_FIELDS,
    Pair,
)

WireItem = dict[str, str | list[dict[str, str]]]

# Each field as (wire name, getter, spelling), looked up once rather than for every item.
_Fields = tuple[tuple[str, Callable[[Any], Any], Callable[[Any], str]], ...]


def _fields(pairs: Iterable[Pair]) -> _Fields:
    return tuple((p.wire, attrgetter(p.path), WRITERS[p.type]) for p in pairs)


_DOSSIER: Final = _fields(DOSSIER_FIELDS)
_LISTS: Final = tuple((g.wire, attrgetter(g.path), _fields(g.fields)) for g in DOSSIER_LISTS)
_PROGRESS: Final = _fields(PROGRESS_FIELDS)


def _written(model: object, fields: _Fields) -> dict[str, str]:
    # Absent is "" whatever the type: only present values are spelled, most by a C function.
    return {wire: "" if (v := get(model)) is None else spell(v) for wire, get, spell in fields}


def to_dossier_item(dossier: Dossier) -> WireItem:
    """The `DongBoHoSoMC` data item; the progress travels apart, as `to_progress_item`s."""
    item: WireItem = {**_written(dossier, _DOSSIER)}
    for wire, get, fields in _LISTS:
        item[wire] = [_written(entry, fields) for entry in get(dossier)]
    return item


def to_progress_item(dossier_code: str, step: Progress) -> dict[str, str]:
    """The `CapNhatTienDoHoSoMC` data item for one processing step of a dossier."""
    return {PROGRESS_CODE: str(dossier_code), **_written(step, _PROGRESS)}
