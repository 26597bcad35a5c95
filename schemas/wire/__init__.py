"""The national portal's wire items, from and to the normalized dossier.

The portal speaks the vendors' dialect (DOMAIN.md): Vietnamese field names, every scalar a JSON
string, dates as `yyyyMMddHHmmss` in Vietnam time, a missing value as "". The normalized
contract speaks typed English. This package is the only place that crosses between them:

- `table`: the mapping table, one row per field; both directions and `docs/contract.md` are
  read from it, so the three cannot disagree;
- `time`: wire dates;
- `spelling`: each wire type as a string, written one way and read in every vendor's way;
- `writer`: dossier to wire items, fast, trusting the model;
- `records`: the table worked out once into what the readers walk;
- `reader`: wire items to a dossier, trusting nothing, quickly when all is well;
- `inspection`: the careful reading the reader falls back on, which finds every problem;
- `problems`: what is wrong with an item, told in wire names, personal values masked.

Reading back what was written gives the same dossier, for every valid dossier: the tests hold
the package to that.
"""

from schemas.wire.reader import from_wire, progress_from_item
from schemas.wire.table import DOSSIER_FIELDS, DOSSIER_LISTS, MAPPING, PROGRESS_FIELDS, WireType
from schemas.wire.time import VIETNAM_TIME, WIRE_TIME_PATTERN, from_wire_time, to_wire_time
from schemas.wire.writer import to_dossier_item, to_progress_item

__all__ = [
    "DOSSIER_FIELDS",
    "DOSSIER_LISTS",
    "MAPPING",
    "PROGRESS_FIELDS",
    "VIETNAM_TIME",
    "WIRE_TIME_PATTERN",
    "WireType",
    "from_wire",
    "from_wire_time",
    "progress_from_item",
    "to_dossier_item",
    "to_progress_item",
    "to_wire_time",
]
