"""How the portal judges one item, on its own: a bad item never stops the others.

Items are read with `schemas.wire`, the package the sync service writes them with, so the
simulator is exactly as strict as the contract: field names, codes, dates, lengths. Then the
portal's own rule: a unit writes only its own dossiers (the level-1 group of `MaHoSo` must be
that of `madonvi`), and a due date (NgayHenTra) never before the reception (NgayTiepNhan).
Messages come from the contract's problems, whose values are already masked.

An accepted item is kept as it was sent: that is what the history must show. The portal's own
spelling of it (what TraCuuHoSo answers, whatever spelling the vendor used) is made again when
it is read, because reading is rare and the write path is the benchmarks' hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, cast

import orjson

from schemas.errors import ContractError, Problem
from schemas.identifiers import DossierCode
from schemas.wire import (
    from_wire,
    progress_from_item,
    to_dossier_item,
    to_progress_item,
    to_wire_time,
)


class Refusal(NamedTuple):
    """An invalid item (error_code 1): every problem, as `field: value — rule`."""

    message: str


class DossierItem(NamedTuple):
    """An accepted `DongBoHoSoMC` item."""

    code: str
    status: int
    item: bytes  # JSON, as sent


class StepItem(NamedTuple):
    """An accepted `CapNhatTienDoHoSoMC` item; (handled_at, status, handler) is its key, read
    from the item, so that the same step spelled another way is still the same step."""

    code: str
    handled_at: str  # yyyyMMddHHmmss
    status: int
    handler: str
    item: bytes  # JSON, as sent


def judge_dossier(raw: object, unit: str) -> DossierItem | Refusal:
    try:
        dossier = from_wire(cast(Mapping[str, object], raw))  # it refuses a non-object too
    except ContractError as error:
        return _refusal([*error.problems, *_foreign(raw, unit, "MaHoSo")])
    if foreign := _foreign(raw, unit, "MaHoSo"):
        return _refusal(foreign)
    if (
        dossier.due_at is not None
        and dossier.received_at is not None
        and dossier.due_at < dossier.received_at
    ):
        # The portal's own business rule, beyond the contract's shape: the bus only finds
        # out from the portal's answer, as with the real one.
        due = cast(dict[str, str], raw)["NgayHenTra"]
        return _refusal([Problem("NgayHenTra", repr(due), "cannot be before NgayTiepNhan")])
    return DossierItem(str(dossier.code), int(dossier.status), orjson.dumps(raw))


def judge_step(raw: object, unit: str) -> StepItem | Refusal:
    field = "CapNhatTienDoHoSoMC.MaHoSo"
    try:
        step = progress_from_item(cast(Mapping[str, object], raw))
    except ContractError as error:
        return _refusal([*error.problems, *_foreign(raw, unit, field)])
    if foreign := _foreign(raw, unit, field):
        return _refusal(foreign)
    code = cast(dict[str, str], raw)["MaHoSo"]  # progress_from_item checked it
    return StepItem(
        code, to_wire_time(step.handled_at), int(step.status), step.handler, orjson.dumps(raw)
    )


def dossier_spelled_by_portal(item: bytes) -> dict[str, Any]:
    """A stored dossier item as the portal spells it: every field, each in one spelling."""
    return dict(to_dossier_item(from_wire(orjson.loads(item))))


def step_spelled_by_portal(item: bytes) -> dict[str, str]:
    raw = orjson.loads(item)
    return to_progress_item(raw["MaHoSo"], progress_from_item(raw))


def _refusal(problems: list[Problem]) -> Refusal:
    return Refusal("; ".join(map(str, problems)))


def _foreign(raw: object, unit: str, field: str) -> list[Problem]:
    """The problem of a dossier code of another unit; a malformed code is the reader's."""
    code = raw.get("MaHoSo") if isinstance(raw, dict) else None
    try:
        own = DossierCode.parse(code).unit
    except ContractError:
        return []
    if own == unit:
        return []
    rule = f"must belong to the unit of madonvi ({unit}): a unit writes only its own dossiers"
    return [Problem(field, repr(code), rule)]


def result_code(raw: object) -> str:
    """The MaHoSo a result line names: as sent when it is text, else ""."""
    code = raw.get("MaHoSo") if isinstance(raw, dict) else None
    return code[:100] if isinstance(code, str) else ""
