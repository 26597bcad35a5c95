"""`file_drop`: CSV, JSON and XML exports dropped in a folder, one file a batch.

    [source]
    folder = "/srv/motcua/xuat"
    pattern = "hoso-*"

Files are read oldest name first (exports are usually named by date and time), each whole
as one batch. Once its records are committed the file moves to `done/`; a file that cannot
be read moves to `rejected/` with `<name>.reason.txt` beside it saying why, so that nobody
has to search a log. Nothing is ever overwritten: a name already taken gets a number.

A file is left alone while it may still be written: for `settle_seconds` after its last
change, and always when hidden or named `*.part` or `*.tmp` (write under such a name, then
rename, and the connector never sees half a file).

Formats, by extension:
- `.csv`: a header row of field names; an empty cell is None, every other cell text, as
  the file has it. A row of empty cells (spreadsheets leave them) is no record.
- `.json`: an array of record objects, or an object holding them in `items`.
- `.xml`: a root element holding one element per record; a record's child elements (and
  its attributes) are its fields. A child with children of its own is a list field, one
  item per child, each item's children its fields. An empty element is None. DOCTYPE
  declarations are refused: they are how entity expansion attacks get in.

CSV and JSON are read in `encoding` (a byte order mark is fine); an XML file says its own.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import Field, field_validator

from connectors.source import Batch, PollSource, Record, SourceError, SourceSettings

_UNFINISHED: Final = (".part", ".tmp")


class FileDropSettings(SourceSettings):
    folder: Path
    pattern: str = Field("*", min_length=1)  # a glob on file names, e.g. "hoso-*.csv"
    done_dir: Path = Path("done")  # relative paths are inside `folder`
    rejected_dir: Path = Path("rejected")
    encoding: str = "utf-8-sig"
    settle_seconds: float = Field(1.0, ge=0)

    @field_validator("encoding")
    @classmethod
    def _known(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError as error:  # "unknown encoding: utf8x"
            raise ValueError(str(error)) from None
        return encoding


class _Unreadable(Exception):
    """The file is not what its extension says; the message says how, for the reason file."""


@dataclass(frozen=True)
class _Parsed:
    records: Sequence[Record]
    refs: Sequence[str]


class FileDrop(PollSource):
    kind = "file_drop"
    settings_model = FileDropSettings
    settings: FileDropSettings

    def describe(self) -> str:
        return f"file_drop {self.settings.folder}/{self.settings.pattern}"

    async def open(self) -> None:
        folder = self.settings.folder
        if not folder.is_dir():
            raise self._error("the folder does not exist; check folder")
        # Every file read is moved, so a folder we may only read would be read forever.
        if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            raise self._error("cannot read and move files in the folder; check its permissions")

    async def check(self) -> None:
        await self.open()

    async def fetch(self, cursor: str | None, limit: int) -> Batch:
        """The oldest ready file, whole: `limit` is not applied, a file being one unit that
        is done or rejected as a whole. No file: an empty batch, `done`."""
        return await asyncio.to_thread(self._fetch)

    async def sample(self, limit: int) -> list[Record]:
        batch = await self.fetch(None, limit)
        if batch.problem:
            raise self._error(f"{batch.ref}: {batch.problem}")
        return list(batch.records[:limit])

    async def committed(self, batch: Batch) -> None:
        path = batch.context.get("path")
        if isinstance(path, Path):
            await asyncio.to_thread(self._move, path, batch.problem)

    def _fetch(self) -> Batch:
        ready = self._ready()
        for position, path in enumerate(ready):
            try:
                parsed = _parse(path, self.settings.encoding)
            except FileNotFoundError:
                continue  # taken away since listed: not ours to report
            except _Unreadable as unreadable:
                return Batch(
                    records=[],
                    cursor=None,
                    ref=path.name,
                    problem=str(unreadable),
                    context={"path": path},
                )
            except OSError as error:
                return Batch(
                    records=[],
                    cursor=None,
                    ref=path.name,
                    problem=f"cannot read the file ({error.strerror or error})",
                    context={"path": path},
                )
            return Batch(
                records=parsed.records,
                cursor=None,
                ref=path.name,
                refs=parsed.refs,
                done=position == len(ready) - 1,
                context={"path": path},
            )
        return Batch(records=[], cursor=None, done=True)

    def _ready(self) -> list[Path]:
        settled_before = time.time() - self.settings.settle_seconds
        try:
            entries = sorted(self.settings.folder.iterdir())
        except OSError as error:
            raise self._error(f"cannot list the folder ({error.strerror or error})") from None
        ready = []
        for path in entries:
            name = path.name
            if name.startswith(".") or name.lower().endswith(_UNFINISHED):
                continue
            if not path.match(self.settings.pattern):
                continue
            try:
                status = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file() and status.st_mtime <= settled_before:
                ready.append(path)
        return ready

    def _move(self, path: Path, problem: str | None) -> None:
        if not path.exists():
            return  # moved already: `committed` may come twice after a restart
        into = self.settings.folder / (
            self.settings.rejected_dir if problem else self.settings.done_dir
        )
        try:
            into.mkdir(parents=True, exist_ok=True)
            target = _free_name(into / path.name)
            shutil.move(path, target)  # a rename, or a copy when `into` is another disk
            if problem:
                reason = target.with_name(f"{target.name}.reason.txt")
                reason.write_text(f"{problem}\n", encoding="utf-8")
        except OSError as error:
            raise self._error(
                f"cannot move {path.name} into {into} ({error.strerror or error})"
            ) from None

    def _error(self, problem: str) -> SourceError:
        return SourceError(f"{self.describe()}: {problem}")


def _free_name(target: Path) -> Path:
    """`target`, or `name-1.csv`, `name-2.csv`... whichever is not taken (nor its reason)."""
    candidate, number = target, 0
    while candidate.exists() or candidate.with_name(f"{candidate.name}.reason.txt").exists():
        number += 1
        candidate = target.with_name(f"{target.stem}-{number}{target.suffix}")
    return candidate


def _parse(path: Path, encoding: str) -> _Parsed:
    parse = _PARSERS.get(path.suffix.lower())
    if parse is None:
        kind = f"type {path.suffix!r}" if path.suffix else "name without an extension"
        raise _Unreadable(f"unknown file {kind}: file_drop reads .csv, .json and .xml files")
    return parse(path, encoding)


def _text(path: Path, encoding: str) -> str:
    content = path.read_bytes()
    try:
        return content.decode(encoding)
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise _Unreadable(
            f"not {encoding} text (line {line}, byte {error.start}); check the export's encoding"
        ) from None


def _csv(path: Path, encoding: str) -> _Parsed:
    # Strict: else a quote left open swallows the rest of the file into one cell, silently.
    rows = csv.reader(io.StringIO(_text(path, encoding), newline=""), strict=True)
    try:
        header = next(rows, None)
        if not header or not any(header):
            raise _Unreadable("no header row: the first row must name the fields")
        if blank := [str(column) for column, name in enumerate(header, 1) if not name]:
            raise _Unreadable(f"the header row has no name for column {', '.join(blank)}")
        if len(set(header)) < len(header):
            twice = sorted({name for name in header if header.count(name) > 1})
            raise _Unreadable(f"the header row names {', '.join(twice)} more than once")
        records: list[Record] = []
        refs: list[str] = []
        # Numbered as a spreadsheet shows them: the header is row 1.
        for number, row in enumerate(rows, start=2):
            if not any(row):
                continue
            if len(row) > len(header):
                raise _Unreadable(f"row {number} has {len(row)} cells, the header {len(header)}")
            cells = row + [""] * (len(header) - len(row))
            records.append({name: cell or None for name, cell in zip(header, cells, strict=True)})
            refs.append(f"{path.name}:row {number}")
    except csv.Error as error:
        raise _Unreadable(f"not valid CSV (row {rows.line_num}: {error})") from None
    return _Parsed(records, refs)


def _json(path: Path, encoding: str) -> _Parsed:
    try:
        content: Any = orjson.loads(_text(path, encoding))
    except orjson.JSONDecodeError as error:
        raise _Unreadable(f"not valid JSON ({error})") from None
    if isinstance(content, dict) and isinstance(content.get("items"), list):
        content = content["items"]
    if not isinstance(content, list):
        raise _Unreadable('not records: expected an array of objects, or {"items": [...]}')
    for number, item in enumerate(content, start=1):
        if not isinstance(item, dict):
            raise _Unreadable(f"item {number} is a {type(item).__name__}, not a record object")
    return _Parsed(content, [f"{path.name}:item {number}" for number in range(1, len(content) + 1)])


class _NoDoctype(ET.TreeBuilder):
    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        # Called as the declaration starts, before any entity in it is defined or expanded.
        raise _Unreadable("a DOCTYPE declaration: refused, as entities could be hidden in it")


def _xml(path: Path, encoding: str) -> _Parsed:
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(path.read_bytes())
        root = parser.close()
    except ET.ParseError as error:
        raise _Unreadable(f"not well-formed XML ({error})") from None
    try:
        records = [_fields(element, f"record {number}") for number, element in enumerate(root, 1)]
    except RecursionError:  # raised out of fetch, it would hold up every file after this one
        raise _Unreadable("elements nested too deeply to be a record's fields") from None
    return _Parsed(records, [f"{path.name}:record {n}" for n in range(1, len(records) + 1)])


def _fields(element: ET.Element, where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {_local(name): value or None for name, value in element.attrib.items()}
    for child in element:
        name = _local(child.tag)
        if name in fields:
            raise _Unreadable(f"{where} has the field {name!r} more than once")
        if len(child):
            fields[name] = [
                _fields(item, f"{where}, {name} item {number}")
                for number, item in enumerate(child, 1)
            ]
        else:
            # Blank is None too: a pretty-printer writes an empty element over two lines.
            fields[name] = child.text if child.text and child.text.strip() else None
    return fields


def _local(name: str) -> str:
    return name.rpartition("}")[2]  # "{urn:ns}MaHoSo" -> "MaHoSo"


_PARSERS: Final[dict[str, Callable[[Path, str], _Parsed]]] = {
    ".csv": _csv,
    ".json": _json,
    ".xml": _xml,
}
