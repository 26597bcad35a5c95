"""The sample local system's exports: files dropped into a folder, as a nightly job writes them.

`export(records, folder, format)` writes one file of records:

- csv: a header row, UTF-8; each nested list as a JSON text cell, None as an empty cell
  (the contract has no empty text, so an empty cell always means absent);
- json: an array of the records as they are;
- xml: `<ho_so_list><ho_so><ma_ho_so>…</ma_ho_so>…<tai_lieu><item>…</item></tai_lieu>
  </ho_so></ho_so_list>`, an absent value as an omitted element.

Each file appears whole: it is written as `<name>.part` and renamed, so a connector watching
the folder never reads half a file (it must skip `*.part`). Names sort in export order: they
carry the newest cap_nhat_luc of their records, which only grows as the system moves on.
"""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from connectors.sample.local import UPDATED_AT

Records = Sequence[Mapping[str, Any]]


def _csv(records: Records) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    header = list(records[0])
    writer.writerow(header)
    for record in records:
        writer.writerow(_cell(record[name]) for name in header)
    return out.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _json(records: Records) -> bytes:
    return json.dumps(list(records), ensure_ascii=False, indent=1).encode("utf-8")


def _xml(records: Records) -> bytes:
    root = ET.Element("ho_so_list")
    for record in records:
        _fill(ET.SubElement(root, "ho_so"), record)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _fill(element: ET.Element, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        child = ET.SubElement(element, name)
        if isinstance(value, list):
            for item in value:
                _fill(ET.SubElement(child, "item"), item)
        else:
            child.text = str(value)


WRITERS: Final[dict[str, Callable[[Records], bytes]]] = {
    "csv": _csv,
    "json": _json,
    "xml": _xml,
}
FORMATS: Final = tuple(WRITERS)


def export(records: Records, folder: Path, format: str, *, prefix: str = "ho_so") -> Path | None:
    """Write `records` into `folder` as one file in `format` (csv, json or xml) and return
    its path; None when there is nothing to export, as the job then writes no file."""
    if format not in WRITERS:
        raise ValueError(f"unknown export format {format!r}: one of {', '.join(FORMATS)}")
    if not records:
        return None
    body = WRITERS[format](records)
    newest = max(str(record[UPDATED_AT]) for record in records)
    # "2025-07-01 08:30:00.000001" → "20250701T083000000001": sortable, and safe in a name.
    moment = newest.replace("-", "").replace(":", "").replace(".", "").replace(" ", "T")
    path = folder / f"{prefix}_{moment}.{format}"
    part = path.with_name(path.name + ".part")
    folder.mkdir(parents=True, exist_ok=True)
    with part.open("wb") as file:
        file.write(body)
        file.flush()
        os.fsync(file.fileno())  # whole on disk before it has its name
    part.replace(path)
    return path
