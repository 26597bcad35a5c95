"""Reading wire items into a dossier, trusting nothing.

Reading first checks what only the wire can get wrong: every scalar a string, dates, codes and
flags well spelled, no unknown field. The models then judge the rest, and one ContractError
reports the problems of both kinds, each at its wire place (`problems.py`).

A missing field, null and "" all mean absent, so a required field sent as "" is "required".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple, TypeVar

from pydantic import ValidationError

from schemas.base import Contract
from schemas.dossier import Dossier, Progress
from schemas.errors import ContractError, Problem
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
    WireType,
)


def _scalar(raw: object, wire_type: WireType) -> object:
    if not isinstance(raw, str):
        raise ValueError("every wire scalar must be a JSON string")
    return READERS[wire_type](raw)


class _Record(NamedTuple):
    """What one kind of wire object may hold, and where its objects sit in a Dossier."""

    name: str
    loc: Loc
    fields: tuple[Pair, ...]
    lists: tuple[tuple[ListPair, _Record], ...]
    known: frozenset[str]


def _record(
    name: str,
    loc: Loc,
    fields: tuple[Pair, ...],
    lists: Iterable[ListPair] = (),
    also: Iterable[str] = (),
) -> _Record:
    entries = tuple((g, _record(g.wire, (*loc, g.path), g.fields)) for g in lists)
    known = frozenset([*(p.wire for p in fields), *(g.wire for g, _ in entries), *also])
    return _Record(name, loc, fields, entries, known)


_DOSSIER: Final = _record(DOSSIER_ITEM, (), DOSSIER_FIELDS, DOSSIER_LISTS)
_PROGRESS: Final = _record(PROGRESS_ITEM, ("progress",), PROGRESS_FIELDS, also=[PROGRESS_CODE])


def _read(item: object, record: _Record, place: Place, issues: list[Issue]) -> dict[str, Any]:
    """The normalized data of one wire object; its problems are added to `issues`."""
    if not isinstance(item, Mapping):
        issues.append(Issue(place, described(item), "must be a JSON object"))
        return {}
    issues += [
        _unknown(name, item[name], record, place) for name in item if name not in record.known
    ]
    data: dict[str, Any] = {}
    for pair in record.fields:
        # The wire flattens the applicant into the dossier. Its object is made even when all
        # its fields are absent, so that the model names each missing one.
        owner, _, key = pair.path.rpartition(".")
        into = data.setdefault(owner, {}) if owner else data
        raw = item.get(pair.wire)
        if raw is None or raw == "":
            continue
        try:
            into[key] = _scalar(raw, pair.type)
        except ValueError as error:
            loc = (*record.loc, *pair.path.split("."))
            issues.append(Issue((*place, pair.wire), value_shown(raw, loc), str(error)))
    for group, entries in record.lists:
        raw = item.get(group.wire)
        if isinstance(raw, list):
            data[group.path] = [
                _read(entry, entries, (*place, group.wire, i), issues)
                for i, entry in enumerate(raw)
            ]
        elif raw is not None:
            issues.append(
                Issue((*place, group.wire), value_shown(raw, ()), "must be a JSON array of objects")
            )
    return data


def _unknown(name: object, value: object, record: _Record, place: Place) -> Issue:
    rule = f"unknown field: the portal's {record.name} record has no such field"
    if isinstance(name, str) and (close := difflib.get_close_matches(name, record.known, n=1)):
        rule += f"; did you mean {close[0]!r}?"
    # Who knows what an unknown field holds: show what kind of value it is, never the value.
    return Issue((*place, str(name)), described(value), rule)


def _read_progress(
    item: object, place: Place, dossier_code: str | None, issues: list[Issue]
) -> dict[str, Any]:
    """A progress item's data. Its MaHoSo must be its dossier's or, read alone, a valid code."""
    data = _read(item, _PROGRESS, place, issues)
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


def from_wire(
    dossier_item: Mapping[str, object], progress_items: Iterable[Mapping[str, object]] = ()
) -> Dossier:
    """The dossier a `DongBoHoSoMC` item and its `CapNhatTienDoHoSoMC` items describe.

    Raises ContractError naming every wire field that breaks the wire format or the contract.
    """
    steps = _listed(progress_items)
    sent = {**(dossier_item if isinstance(dossier_item, Mapping) else {}), PROGRESS_ITEM: steps}
    code = sent.get("MaHoSo")  # when unusable, the dossier's problem: its steps are read alone
    dossier_code = code if isinstance(code, str) and code else None
    issues: list[Issue] = []
    data = _read(dossier_item, _DOSSIER, (), issues)
    data["progress"] = [
        _read_progress(step, (PROGRESS_ITEM, i), dossier_code, issues)
        for i, step in enumerate(steps)
    ]
    return _validated(Dossier, data, issues, sent, ())


def progress_from_item(item: Mapping[str, object]) -> Progress:
    """The processing step a `CapNhatTienDoHoSoMC` item describes; its MaHoSo must be valid."""
    issues: list[Issue] = []
    # Its problems are labelled as those of the item it is: CapNhatTienDoHoSoMC.NguoiXuLy.
    data = _read_progress(item, (PROGRESS_ITEM,), None, issues)
    return _validated(Progress, data, issues, {PROGRESS_ITEM: item}, ("progress",))


def _listed(items: object) -> list[object]:
    # A string or a mapping is iterable too, but it is no list of items.
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ContractError([Problem(PROGRESS_ITEM, described(items), "must be a list of items")])
    return list(items)


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
