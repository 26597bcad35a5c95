"""What is wrong with a wire item, told in the wire's own names.

A problem is found either by the reader's wire checks, at a wire place it knows, or by the
models, at a normalized location (`documents.0.url`) that the table turns into its wire place
(`TaiLieuNop[0].DuongDanTaiTepTin`). Either way the message shows the value as it was sent:
masked when personal, and only its kind (`<12 characters>`) when nobody knows what it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

from pydantic import ValidationError

from schemas.dossier import Applicant, Dossier
from schemas.errors import ContractError, Problem, shown
from schemas.wire.table import (
    DOSSIER_FIELDS,
    DOSSIER_ITEM,
    DOSSIER_LISTS,
    PROGRESS_FIELDS,
    PROGRESS_ITEM,
)

# The same field, where the wire has it and where the Dossier has it.
Place = tuple[str | int, ...]  # ("TaiLieuNop", 0, "DuocSoHoa")
Loc = tuple[str | int, ...]  # ("documents", 0, "digitized")

REQUIRED: Final = 'required (a missing field, null and "" all count as absent)'
MISSING: Final = object()


class Issue(NamedTuple):
    """One problem, at its wire place; the label is made from the place at the end."""

    place: Place
    value: str  # as a message may show it
    rule: str


def value_shown(raw: object, loc: Loc) -> str:
    """A value sent for the normalized field at `loc`, masked if that field is personal."""
    return "missing" if raw is MISSING else shown(raw, loc, (Dossier,))


def described(value: object) -> str:
    """What kind of JSON value this is, without its content."""
    if isinstance(value, str):
        return f"<{len(value)} characters>"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "a number" if isinstance(value, int | float) else f"a {type(value).__name__}"


def model_issues(error: ValidationError, at: Loc, sent: Mapping[str, object]) -> list[Issue]:
    """A model's verdict on data read from `sent`; `at` is where the model sits in a Dossier."""
    issues = []
    for detail in error.errors(include_url=False, include_input=False):
        missing = detail["type"] == "missing"
        rule = REQUIRED if missing else detail["msg"].removeprefix("Value error, ")
        loc, rule = _applicant_retold((*at, *detail["loc"]), rule)
        place = _place(loc)
        issues.append(Issue(place, value_shown(_at(sent, place), loc), rule))
    return issues


def refusal(issues: Iterable[Issue]) -> ContractError:
    return ContractError(Problem(_label(issue.place), issue.value, issue.rule) for issue in issues)


_WIRE_NAMES: Final = {
    **{p.path: p.wire for p in DOSSIER_FIELDS},
    **{g.path: g.wire for g in DOSSIER_LISTS},
    **{f"{g.path}.{p.path}": p.wire for g in DOSSIER_LISTS for p in g.fields},
    "progress": PROGRESS_ITEM,
    **{f"progress.{p.path}": p.wire for p in PROGRESS_FIELDS},
}


def _place(loc: Loc) -> Place:
    """The wire place of a normalized location: list indices stay, names are translated."""
    place: list[str | int] = []
    path = ""
    for step in loc:
        if isinstance(step, int):
            place.append(step)
            continue
        path = f"{path}.{step}" if path else step
        if path in _WIRE_NAMES:  # else the applicant, which has no place of its own on the wire
            place.append(_WIRE_NAMES[path])
    return tuple(place)


_APPLICANT_FIELD = re.compile(rf"\b({'|'.join(Applicant.model_fields)})\b")


def _applicant_retold(loc: Loc, rule: str) -> tuple[Loc, str]:
    """An error about the applicant as a whole, told at the first field it names, in wire names.

    The wire has no applicant object to point at: "a citizen's id_number must be 12 digits"
    becomes a problem of SoGiayToChuHoSo, saying "a citizen's SoGiayToChuHoSo must be ...".
    """
    cited = _APPLICANT_FIELD.search(rule) if loc == ("applicant",) else None
    if cited is None:
        return loc, rule
    rule = _APPLICANT_FIELD.sub(lambda name: _WIRE_NAMES[f"applicant.{name[0]}"], rule)
    return (*loc, cited[0]), rule


def _at(sent: object, place: Place) -> object:
    """The value sent at a place, or MISSING."""
    for step in place:
        if isinstance(sent, Mapping) and isinstance(step, str):
            sent = sent.get(step, MISSING)
        elif isinstance(sent, list) and isinstance(step, int) and step < len(sent):
            sent = sent[step]
        else:
            return MISSING
    return sent


def _label(place: Place) -> str:
    """`TaiLieuNop[0].DuocSoHoa`; the dossier item as a whole is `DongBoHoSoMC`."""
    label = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in place)
    return label.removeprefix(".") or DOSSIER_ITEM
