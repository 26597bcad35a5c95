"""Names of level-1 units (ministries `Gnn`, provinces `Hnn`), kept as data.

The 2025 merger of 63 provinces into 34 reassigned codes in ways that are not public, so the
table is a file a deployment can replace (`load_units(path)`), never the only truth: an
unknown unit is still a valid code, it just has no name here.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple


class Unit(NamedTuple):
    code: str
    name: str
    kind: str  # "province" or "ministry"


def load_units(path: Path | None = None) -> dict[str, Unit]:
    """Read a `unit,name,kind` table; the packaged one when no path is given."""
    if path is None:
        text = resources.files("schemas").joinpath("data/units.csv").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return {
        row["unit"]: Unit(row["unit"], row["name"], row["kind"])
        for row in csv.DictReader(text.splitlines())
    }


@cache
def _packaged() -> dict[str, Unit]:
    return load_units()


def unit_name(unit: str) -> str | None:
    """The packaged name of a unit such as `H29`, or None when the table does not know it."""
    found = _packaged().get(unit)
    return found.name if found else None
