"""Inspecting wire items: reading them trusting nothing, to tell all that is wrong at once.

The reader takes this way when its quick one stops at a doubt. Inspection first checks what only
the wire can get wrong: every scalar a string, dates, codes and flags well spelled, no unknown
field. The models then judge the rest, and one ContractError reports the problems of both kinds,
each at its wire place (`problems.py`). An item found sound is read all the same.

When the quick way read an item without a doubt and only the models refused it, there is no
need to read it again: `dossier_refusal` and `progress_refusal` tell the models' problems.

A missing field, null and "" all mean absent, so a required field sent as "" is "required".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas.base import Contract
from schemas.dossier import Dossier, Progress
from schemas.errors import ContractError
from schemas.identifiers import DossierCode
from schemas.wire.problems import (
    MISSING,
    REQUIRED,
    Issue,
    Loc,
    Place,
    described,
    model_issues,
    refusal,
    value_shown,
)
from schemas.wire.records import DOSSIER, PROGRESS, Record
from schemas.wire.table import PROGRESS_CODE, PROGRESS_ITEM


def inspected_dossier(dossier_item: object, steps: list[object]) -> Dossier:
    """The dossier of a `DongBoHoSoMC` item and its steps, or ContractError telling why not."""
    sent = _sent(dossier_item, steps)
    code = sent.get("MaHoSo")  # when unusable, the dossier's problem: its steps are read alone
    dossier_code = code if isinstance(code, str) and code else None
    issues: list[Issue] = []
    data = _read(dossier_item, DOSSIER, (), issues)
    data["progress"] = [
        _read_progress(step, (PROGRESS_ITEM, i), dossier_code, issues)
        for i, step in enumerate(steps)
    ]
    return _validated(Dossier, data, issues, sent, ())


def inspected_progress(item: object) -> Progress:
    """The step of a `CapNhatTienDoHoSoMC` item read alone, or ContractError telling why not."""
    issues: list[Issue] = []
    # Its problems are labelled as those of the item it is: CapNhatTienDoHoSoMC.NguoiXuLy.
    data = _read_progress(item, (PROGRESS_ITEM,), None, issues)
    return _validated(Progress, data, issues, {PROGRESS_ITEM: item}, ("progress",))


def dossier_refusal(
    error: ValidationError, dossier_item: object, steps: list[object]
) -> ContractError:
    """The model's refusal of a dossier whose items are sound on the wire, in wire names."""
    return refusal(model_issues(error, (), _sent(dossier_item, steps)))


def progress_refusal(error: ValidationError, item: object) -> ContractError:
    """The model's refusal of a step whose item is sound on the wire, in wire names."""
    return refusal(model_issues(error, ("progress",), {PROGRESS_ITEM: item}))


def _sent(dossier_item: object, steps: list[object]) -> dict[str, object]:
    """Where problems find the values sent: the dossier item, its steps beside its fields."""
    return {**(dossier_item if isinstance(dossier_item, Mapping) else {}), PROGRESS_ITEM: steps}


def _read(item: object, record: Record, place: Place, issues: list[Issue]) -> dict[str, Any]:
    """The normalized data of one wire object; its problems are added to `issues`."""
    if not isinstance(item, Mapping):
        issues.append(Issue(place, described(item), "must be a JSON object"))
        return {}
    issues += [
        _unknown(name, item[name], record, place) for name in item if name not in record.known
    ]
    # An owner's object is made even when all its fields are absent, so that the model names
    # each missing one.
    data: dict[str, Any] = {owner: {} for owner, _ in record.flattened}
    for wire, key, read, owner, loc in record.fields:
        raw = item.get(wire)
        if raw is None or raw == "":
            continue
        try:
            (data[owner] if owner else data)[key] = _scalar(raw, read)
        except ValueError as error:
            issues.append(Issue((*place, wire), value_shown(raw, loc), str(error)))
    for wire, key, entries in record.lists:
        raw = item.get(wire)
        if isinstance(raw, list):
            data[key] = [
                _read(entry, entries, (*place, wire, i), issues) for i, entry in enumerate(raw)
            ]
        elif raw is not None:
            issues.append(
                Issue((*place, wire), value_shown(raw, ()), "must be a JSON array of objects")
            )
    return data


def _scalar(raw: object, read: Callable[[str], object]) -> object:
    if not isinstance(raw, str):
        raise ValueError("every wire scalar must be a JSON string")
    return read(raw)


def _unknown(name: object, value: object, record: Record, place: Place) -> Issue:
    rule = f"unknown field: the portal's {record.name} record has no such field"
    if isinstance(name, str) and (close := difflib.get_close_matches(name, record.known, n=1)):
        rule += f"; did you mean {close[0]!r}?"
    # Who knows what an unknown field holds: show what kind of value it is, never the value.
    return Issue((*place, str(name)), described(value), rule)


def _read_progress(
    item: object, place: Place, dossier_code: str | None, issues: list[Issue]
) -> dict[str, Any]:
    """A progress item's data. Its MaHoSo must be its dossier's or, read alone, a valid code."""
    data = _read(item, PROGRESS, place, issues)
    if isinstance(item, Mapping):
        code = item.get(PROGRESS_CODE, MISSING)
        if rule := _progress_code_rule(code, dossier_code):
            issues.append(Issue((*place, PROGRESS_CODE), value_shown(code, ()), rule))
    return data


def _progress_code_rule(code: object, dossier_code: str | None) -> str | None:
    if code is MISSING or code is None or code == "":
        return REQUIRED
    if dossier_code is None:
        try:
            DossierCode.parse(code)
        except ContractError as error:
            return error.problems[0].rule
    elif code != dossier_code:
        return f"must be the MaHoSo of its dossier, {dossier_code!r}"
    return None


_M = TypeVar("_M", bound=Contract)


def _validated(
    model: type[_M], data: dict[str, Any], issues: list[Issue], sent: Mapping[str, object], at: Loc
) -> _M:
    """The model of `data`, or ContractError with the wire's issues and then the model's."""
    try:
        result = model.model_validate(data)
    except ValidationError as error:
        # What the wire checks refused was left out of `data`: don't also call it "required".
        refused = [issue.place for issue in issues]
        issues += [
            issue
            for issue in model_issues(error, at, sent)
            if not any(issue.place[: len(place)] == place for place in refused)
        ]
    else:
        if not issues:
            return result
    raise refusal(issues)
