"""Reading wire items into a dossier, trusting nothing, quickly when all is well.

Nearly every item the portal receives is sound, so reading takes the quick way first: one pass
that reads and checks each field, stops at the first doubt (a field that is no string, a value
its reader refuses, an unknown field) and leaves the rest to the models. At a doubt the item
is read again by `inspection`, which tells every problem at once, in wire names. When the
models refuse what the quick way read, their problems are all there is, and are told so.

Both ways read the same fields with the same readers (`records.py`): what the quick way
reads, inspection would have read too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from schemas.dossier import Dossier, Progress
from schemas.errors import ContractError, Problem
from schemas.identifiers import DossierCode
from schemas.wire.inspection import (
    dossier_refusal,
    inspected_dossier,
    inspected_progress,
    progress_refusal,
)
from schemas.wire.problems import described
from schemas.wire.records import DOSSIER, PROGRESS, Reading, Record
from schemas.wire.table import PROGRESS_CODE, PROGRESS_ITEM


def from_wire(
    dossier_item: Mapping[str, object], progress_items: Iterable[Mapping[str, object]] = ()
) -> Dossier:
    """The dossier a `DongBoHoSoMC` item and its `CapNhatTienDoHoSoMC` items describe.

    Raises ContractError naming every wire field that breaks the wire format or the contract.
    """
    steps = _listed(progress_items)
    try:
        data = _quick_dossier(dossier_item, steps)
    except (_Doubt, ValueError):  # ValueError: a reader's rule, or a MaHoSo that is none
        return inspected_dossier(dossier_item, steps)
    try:
        return Dossier.model_validate(data)
    except ValidationError as error:  # sound on the wire, so the model's problems are all
        raise dossier_refusal(error, dossier_item, steps) from None


def progress_from_item(item: Mapping[str, object]) -> Progress:
    """The processing step a `CapNhatTienDoHoSoMC` item describes; its MaHoSo must be valid."""
    try:
        data = _quick_step(item, None)
    except (_Doubt, ValueError):
        return inspected_progress(item)
    try:
        return Progress.model_validate(data)
    except ValidationError as error:
        raise progress_refusal(error, item) from None


def _listed(items: object) -> list[object]:
    if isinstance(items, list | tuple):  # nearly always: spare the abstract classes' checks
        return list(items)
    # A string or a mapping is iterable too, but it is no list of items.
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ContractError([Problem(PROGRESS_ITEM, described(items), "must be a list of items")])
    return list(items)


class _Doubt(Exception):
    """Something the quick way does not read: inspection will say whether it is wrong."""


def _quick_dossier(item: object, steps: list[object]) -> dict[str, Any]:
    data = _quick(item, DOSSIER)
    # Its MaHoSo, which each step must carry. Without one the steps are read alone, and the
    # model refuses the dossier.
    code = data.get("code")
    data["progress"] = [_quick_step(step, code) for step in steps]
    return data


def _quick_step(item: object, dossier_code: str | None) -> dict[str, Any]:
    """A progress item's data. Its MaHoSo must be its dossier's or, read alone, a valid code."""
    if not isinstance(item, dict):
        raise _Doubt
    code = item.get(PROGRESS_CODE)
    if dossier_code is None:
        DossierCode.parse(code)
    elif code != dossier_code:
        raise _Doubt
    return _quick(item, PROGRESS)


def _quick(item: object, record: Record) -> dict[str, Any]:
    """The normalized data of one wire object, or _Doubt, or a reader's ValueError."""
    if not isinstance(item, dict) or not record.known.issuperset(item):
        raise _Doubt
    data = _quick_values(item, record.own)
    for owner, readings in record.flattened:
        data[owner] = _quick_values(item, readings)
    for wire, key, entries in record.lists:
        raw = item.get(wire)
        if isinstance(raw, list):
            data[key] = [_quick(entry, entries) for entry in raw]
        elif raw is not None:
            raise _Doubt
    return data


def _quick_values(item: dict[str, object], readings: tuple[Reading, ...]) -> dict[str, Any]:
    # The loop every field of every item goes through: it does no more than it must.
    values: dict[str, Any] = {}
    for wire, key, read in readings:
        raw = item.get(wire)
        if isinstance(raw, str):
            if raw:  # "" is absent
                values[key] = read(raw)
        elif raw is not None:  # null is absent too; anything else is no wire scalar
            raise _Doubt
    return values
