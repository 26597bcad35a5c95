"""The sample local systems: a vendor's spelling of the dossier that the example configs map
back exactly, a system that moves in time, and its REST API, SQL table and file exports."""

from __future__ import annotations

import csv
import json
import random
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args, get_origin
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import text

from connectors.config import load_config
from connectors.sample import lifecycles
from connectors.sample.database import LocalDatabase
from connectors.sample.files import FORMATS, export
from connectors.sample.local import (
    COLUMNS,
    FIELDS,
    INTEGERS,
    LIST_COLUMNS,
    LISTS,
    LOCAL_STATUS,
    TIMES,
    UPDATED_AT,
    VERSION,
    LocalSystem,
    to_local,
)
from connectors.sample.rest import PATH, SampleServer, create_app
from schemas import Applicant, Dossier, DossierStatus

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"
KINDS = {
    "rest_poll": ("h29-igate", "000.00.01.H29"),
    "sql_poll": ("g01-dvc", "000.00.01.G01"),
    "webhook": ("h30-hook", "000.00.01.H30"),
    "file_drop": ("h31-files", "000.00.01.H31"),
}
START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
KEY = "khoa-thu-nghiem"
LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
LOCAL_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")


def example(kind: str) -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / f"{kind}.toml").read_text(encoding="utf-8"))


def system(agency: str = "000.00.01.H29", count: int = 60, seed: int = 5) -> LocalSystem:
    return LocalSystem(agency, count, seed=seed, start=START)


# ---- a mapping, as small as a test can make it: the config's tables, read literally --------


def contract_shape(record: dict[str, Any], mapping: dict[str, Any]) -> dict[str, Any]:
    """The record in the contract's names and values, by the config's [mapping] tables: naive
    times taken in Asia/Ho_Chi_Minh, local status codes through the status table."""
    status: dict[str, int] = mapping["status"]
    applicant: type[BaseModel] = Applicant
    shape: dict[str, Any] = {}
    for path, local in mapping["fields"].items():
        head, _, rest = path.partition(".")
        if rest:
            shape.setdefault(head, {})[rest] = national(applicant, rest, record[local], status)
        else:
            shape[head] = national(Dossier, head, record[local], status)
    for name, table in mapping["lists"].items():
        model = get_args(Dossier.model_fields[name].annotation)[0]
        shape[name] = [
            {
                field: national(model, field, item[key], status)
                for field, key in table["fields"].items()
            }
            for item in record[table["from"]]
        ]
    return shape


def national(model: type[BaseModel], field: str, value: Any, status: dict[str, int]) -> Any:
    annotation = model.model_fields[field].annotation
    if value is None:
        return None
    if annotation is DossierStatus:
        return status[value]
    if AwareDatetime in leaves(annotation):
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZONE)
    return value


def leaves(annotation: Any) -> set[Any]:
    args = get_args(annotation)
    return {annotation} if not args else set().union(*(leaves(arg) for arg in args))


@pytest.fixture(scope="module")
def snapshots() -> list[Dossier]:
    """Every state of 300 dossiers, in every unit the examples use, and some of them with
    the few values the generator never sets (a fax, a submission place, a deleted file)."""
    found = []
    for _, agency in KINDS.values():
        for events in lifecycles(agency, 75, seed=17, start=START):
            found.extend(event.payload.dossier for event in events)
    return found + [filled(dossier) for dossier in found[::10]]


def filled(dossier: Dossier) -> Dossier:
    data = dossier.model_dump()
    data["applicant"] |= {"type": 3, "fax": "028 3829 1234", "code": "CQ-01", "id_number": None}
    data["submission_place"] = "BPMC-01"
    data["documents"] = [item | {"deleted": True} for item in data["documents"]]
    return Dossier.model_validate(data)


# ---- the local spelling ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_dossier_read_back_through_an_example_mapping_is_the_dossier_itself(
    kind: str, snapshots: list[Dossier]
) -> None:
    mapping = example(kind)["mapping"]
    for version, dossier in enumerate(snapshots, 1):
        record = to_local(dossier, version=version, updated_at=START)
        assert Dossier.model_validate(contract_shape(record, mapping)) == dossier


def test_the_local_spelling_names_every_field_of_the_dossier_and_its_nested_models() -> None:
    applicant_fields = {f"applicant.{name}" for name in Applicant.model_fields}
    scalars = {name for name in Dossier.model_fields if name != "applicant" and name not in LISTS}
    assert set(FIELDS) == scalars | applicant_fields
    for name, (_, keys) in LISTS.items():
        model = get_args(Dossier.model_fields[name].annotation)[0]
        assert set(keys) == set(model.model_fields), name
    assert set(LISTS) == {
        name
        for name, field in Dossier.model_fields.items()
        if get_origin(field.annotation) is tuple
    }
    assert len(set(COLUMNS)) == len(COLUMNS)
    assert set(LOCAL_STATUS) == set(DossierStatus)
    assert len(set(LOCAL_STATUS.values())) == len(DossierStatus)


@pytest.mark.parametrize("kind", KINDS)
def test_each_example_config_maps_exactly_the_local_spelling(kind: str) -> None:
    mapping = example(kind)["mapping"]
    assert mapping["fields"] == FIELDS
    assert {name: (t["from"], t["fields"]) for name, t in mapping["lists"].items()} == LISTS
    assert mapping["status"] == {local: int(s) for s, local in LOCAL_STATUS.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_each_example_config_loads_as_its_kind_for_its_unit(kind: str) -> None:
    config = load_config(EXAMPLES / f"{kind}.toml")
    name, agency = KINDS[kind]
    assert (config.connector.kind, config.connector.name, config.connector.agency) == (
        kind,
        name,
        agency,
    )
    assert config.connector.seq.field == VERSION


def test_a_local_record_holds_only_plain_text_numbers_and_nulls_in_the_vendors_forms(
    snapshots: list[Dossier],
) -> None:
    statuses = set(LOCAL_STATUS.values())
    for dossier in snapshots[:2000]:
        record = to_local(dossier, version=3, updated_at=START)
        assert tuple(record) == COLUMNS
        assert json.loads(json.dumps(record)) == record
        assert record["trang_thai"] in statuses
        assert record[UPDATED_AT] == "2025-07-01 08:30:00.000000"  # Vietnam's wall clock
        for values in [record, *(item for column in LIST_COLUMNS for item in record[column])]:
            for key, value in values.items():
                if key in INTEGERS:
                    assert type(value) is int, key
                elif key in TIMES:
                    assert value is None or LOCAL_TIME.fullmatch(value), key
                elif key not in LIST_COLUMNS:
                    assert value is None or type(value) is str, key
        assert record["xac_thuc_vneid"] in (0, 1)


def test_a_naive_update_time_is_refused_since_it_names_no_moment() -> None:
    dossier = lifecycles("000.00.01.H29", 1, seed=1, start=START)[0][0].payload.dossier
    with pytest.raises(ValueError, match="naive"):
        to_local(dossier, version=1, updated_at=datetime(2025, 7, 1, 8, 30))


# ---- the system in time ---------------------------------------------------------------------


def test_the_system_applies_all_dossiers_steps_interleaved_in_time_order_and_ends_at_expected() -> (
    None
):
    local = system(count=80)
    rng = random.Random(1)
    updates: list[dict[str, Any]] = []
    while not local.finished:
        updates.extend(local.advance(rng.randint(1, 25)))
    stamps = [record[UPDATED_AT] for record in updates]
    assert all(LOCAL_STAMP.fullmatch(stamp) for stamp in stamps)
    assert stamps == sorted(set(stamps)), "cap_nhat_luc strictly increases"
    codes = [record["ma_ho_so"] for record in updates]
    assert codes != sorted(codes, key=codes.index), "dossiers interleave"
    seen: dict[str, int] = {}
    for record in updates:  # every step comes out, each version one more than the last
        assert record[VERSION] == seen.get(record["ma_ho_so"], 0) + 1
        seen[record["ma_ho_so"]] = record[VERSION]
    rows = local.records()
    assert [row[UPDATED_AT] for row in rows] == sorted(row[UPDATED_AT] for row in rows)
    mapping = example("rest_poll")["mapping"]
    final = {row["ma_ho_so"]: Dossier.model_validate(contract_shape(row, mapping)) for row in rows}
    assert final == local.expected()
    assert len(final) == 80


def test_advancing_past_the_end_gives_only_what_remained_and_then_nothing() -> None:
    local = system(count=5)
    total = local.remaining
    assert len(local.advance(total + 10)) == total
    assert local.finished
    assert local.advance(3) == []
    with pytest.raises(ValueError, match="negative"):
        local.advance(-1)


def test_the_events_are_the_steps_it_replays_in_their_order_each_dossiers_own_by_seq() -> None:
    local = system(count=20)
    events = list(local.events())
    written = local.advance(local.remaining)
    assert [(str(e.dossier_code), e.seq) for e in events] == [
        (record["ma_ho_so"], record[VERSION]) for record in written
    ]


def test_the_same_seed_replays_the_same_records() -> None:
    first, second, other = system(seed=9), system(seed=9), system(seed=10)
    assert first.advance(10_000) == second.advance(10_000)
    assert first.records() == second.records() != other.advance(10_000)


def test_every_example_unit_gets_dossier_codes_of_its_own_agency() -> None:
    for _, agency in KINDS.values():
        local = system(agency, count=5)
        assert local.unit == agency[-3:]
        assert all(code.startswith(f"{agency}-") for code in local.expected())


# ---- REST ------------------------------------------------------------------------------------


@contextmanager
def served(local: LocalSystem) -> Iterator[httpx.Client]:
    """The system's API over HTTP, as a connector meets it."""
    with SampleServer(create_app(local, KEY)) as url, httpx.Client(base_url=url) as client:
        yield client


def page(client: httpx.Client, cursor: str, limit: int) -> list[dict[str, Any]]:
    params = {"cap_nhat_tu": cursor, "so_luong": str(limit)}
    answer = client.get(PATH, params=params, headers={"X-API-Key": KEY})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def poll_all(client: httpx.Client, cursor: str, limit: int) -> tuple[list[Any], str]:
    """Page on from `cursor` as a connector does, until a page comes back short."""
    items: list[dict[str, Any]] = []
    while True:
        found = page(client, cursor, limit)
        items.extend(found)
        if found:
            cursor = found[-1][UPDATED_AT]
        if len(found) < limit:
            return items, cursor


def test_the_rest_api_pages_by_cap_nhat_luc_from_an_inclusive_cursor() -> None:
    local = system(count=40)
    local.advance(10_000)
    rows = local.records()
    with served(local) as client:
        assert page(client, "", 7) == rows[:7]
        assert page(client, rows[6][UPDATED_AT], 7) == rows[6:13]
        # A cursor without microseconds names the same moment at .000000.
        cursor = rows[10][UPDATED_AT][:19]
        assert page(client, cursor, 1000) == [r for r in rows if r[UPDATED_AT] >= cursor]
        items, _ = poll_all(client, "", 7)
        default = client.get(PATH, headers={"X-API-Key": KEY}).json()["items"]
    assert {item["ma_ho_so"]: item for item in items} == {row["ma_ho_so"]: row for row in rows}
    assert default == rows[:100]


def test_a_poller_following_the_cursor_while_the_system_moves_ends_with_every_final_row() -> None:
    local = system(count=50)
    latest: dict[str, dict[str, Any]] = {}
    cursor, finished = "", False
    with served(local) as client:
        while not finished:
            moved = client.post("/_sample/advance", params={"steps": "13"}).json()
            finished = moved["finished"]
            items, cursor = poll_all(client, cursor, 5)
            latest.update((item["ma_ho_so"], item) for item in items)
    assert local.finished
    assert sorted(latest.values(), key=lambda r: r[UPDATED_AT]) == local.records()


def test_the_advance_endpoint_moves_the_system_and_says_how_many_rows_changed() -> None:
    local = system(count=10)
    total = local.remaining
    with served(local) as client:
        moved = client.post("/_sample/advance", params={"steps": "20"}).json()
        assert moved == {"changed": 20, "finished": False}
        assert len(page(client, "", 1000)) == len(local.records()) > 0
        rest = client.post("/_sample/advance", params={"steps": "100000"}).json()
    assert rest == {"changed": total - 20, "finished": True}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "sai-khoa"}], ids=["missing", "wrong"])
def test_the_rest_api_refuses_a_call_without_the_right_key(headers: dict[str, str]) -> None:
    with served(system(count=3)) as client:
        answer = client.get(PATH, params={"so_luong": "5"}, headers=headers)
    assert answer.status_code == 401
    assert "key" in answer.json()["error"].lower()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"cap_nhat_tu": "01/07/2025"}, "cap_nhat_tu"),
        ({"cap_nhat_tu": "2025-07-01T08:30:00"}, "cap_nhat_tu"),
        ({"so_luong": "0"}, "so_luong"),
        ({"so_luong": "5000"}, "so_luong"),
        ({"so_luong": "nhieu"}, "so_luong"),
    ],
)
def test_the_rest_api_answers_a_bad_parameter_with_400_and_its_reason(
    params: dict[str, str], reason: str
) -> None:
    with served(system(count=3)) as client:
        answer = client.get(PATH, params=params, headers={"X-API-Key": KEY})
        assert answer.status_code == 400
        assert reason in answer.json()["error"]
        assert client.post("/_sample/advance", params={"steps": "-1"}).status_code == 400


def test_the_rest_api_is_served_over_http_in_a_background_thread() -> None:
    local = system(count=10)
    with SampleServer(create_app(local, KEY)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/_sample/advance", params={"steps": "20"}).json()["changed"] == 20
        items, _ = poll_all(client, "", 4)
        assert {item["ma_ho_so"] for item in items} == {row["ma_ho_so"] for row in local.records()}
        assert client.get(PATH).status_code == 401


# ---- SQL -------------------------------------------------------------------------------------


def check_database(url: str) -> None:
    """Write the moving system in batches; the table then holds its rows, and the example's
    query, paged on its cursor, reads them all back."""
    local = system("000.00.01.G01", count=60)
    source = example("sql_poll")["source"]
    with LocalDatabase(url) as database:
        database.create_table()
        database.create_table()  # harmless when it exists
        while not local.finished:
            database.write(local.advance(37))  # a batch may hold a dossier twice
        assert database.read() == local.records()
        found: dict[str, dict[str, Any]] = {}
        cursor = source["initial_cursor"]
        with database.engine.connect() as connection:
            while True:
                params = {"cursor": cursor, "limit": 16}
                rows = [
                    dict(row._mapping) for row in connection.execute(text(source["query"]), params)
                ]
                found.update((row["ma_ho_so"], row) for row in rows)
                if len(rows) < 16:
                    break
                cursor = rows[-1][source["cursor_column"]]
    assert all(isinstance(row["tai_lieu"], str) for row in found.values()), "lists are JSON text"
    decoded = [{**row, **{c: json.loads(row[c]) for c in LIST_COLUMNS}} for row in found.values()]
    assert sorted(decoded, key=lambda r: r[UPDATED_AT]) == local.records()


def test_the_sql_sample_upserts_rows_that_the_example_query_reads_back_on_sqlite(
    tmp_path: Path,
) -> None:
    check_database(f"sqlite:///{tmp_path / 'g01.sqlite3'}")


def test_the_sql_sample_upserts_rows_that_the_example_query_reads_back_on_postgresql(
    postgres: str,
) -> None:
    check_database(postgres)


# ---- files -----------------------------------------------------------------------------------


def typed(key: str, value: str) -> Any:
    return int(value) if key in INTEGERS else value


def read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return [
        {
            key: json.loads(cell)
            if key in LIST_COLUMNS
            else None
            if cell == ""
            else typed(key, cell)
            for key, cell in row.items()
        }
        for row in rows
    ]


def read_xml(path: Path) -> list[dict[str, Any]]:
    def values(element: ET.Element, keys: tuple[str, ...]) -> dict[str, Any]:
        found: dict[str, Any] = dict.fromkeys(keys)
        for child in element:
            if child.tag in LIST_COLUMNS:
                item_keys = tuple(LISTS_BY_COLUMN[child.tag].values())
                found[child.tag] = [values(item, item_keys) for item in child]
            else:
                found[child.tag] = typed(child.tag, child.text or "")
        return found

    root = ET.parse(path).getroot()
    assert root.tag == "ho_so_list"
    assert all(element.tag == "ho_so" for element in root)
    return [values(element, COLUMNS) for element in root]


LISTS_BY_COLUMN = dict(LISTS.values())
READERS = {
    "csv": read_csv,
    "json": lambda path: json.loads(path.read_text(encoding="utf-8")),
    "xml": read_xml,
}


@pytest.mark.parametrize("format", FORMATS)
def test_an_export_parses_back_to_the_same_records_in_files_named_in_export_order(
    format: str, tmp_path: Path
) -> None:
    local = system("000.00.01.H31", count=40)
    batches, paths = [], []
    while not local.finished:
        batch = local.advance(45)
        path = export(batch, tmp_path / "drop", format)
        assert path is not None
        batches.append(batch)
        paths.append(path)
    assert len(paths) > 2
    assert sorted(p.name for p in (tmp_path / "drop").iterdir()) == [p.name for p in paths]
    for path, batch in zip(paths, batches, strict=True):
        assert path.suffix == f".{format}"
        assert READERS[format](path) == batch


def test_nothing_to_export_writes_no_file_and_an_unknown_format_is_refused(tmp_path: Path) -> None:
    assert export([], tmp_path, "csv") is None
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="csv, json, xml"):
        export(system(count=2).advance(1), tmp_path, "xlsx")


def test_an_xml_export_omits_absent_values_and_nests_list_items(tmp_path: Path) -> None:
    local = system(count=30)
    records = local.advance(10_000)
    path = export(records, tmp_path, "xml")
    assert path is not None
    first = ET.parse(path).getroot()[0]
    assert first.find("ma_ho_so") is not None
    absent = [key for key, value in records[0].items() if value is None]
    assert absent
    assert all(first.find(key) is None for key in absent)
    documents = first.find("tai_lieu")
    assert documents is not None
    assert [item.tag for item in documents] == ["item"] * len(records[0]["tai_lieu"])
    assert documents[0].findtext("ma_tep") == records[0]["tai_lieu"][0]["ma_tep"]
