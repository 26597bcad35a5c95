"""`file_drop` on real files in a temporary folder: exports as local systems write them
(Vietnamese text, byte order marks, pretty-printed XML), broken ones, and stray files."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.kinds import KINDS
from connectors.kinds.file_drop import FileDrop, FileDropSettings
from connectors.source import Batch, SourceError

CSV = (
    "ma_ho_so,chu_ho_so,dia_chi,le_phi,ghi_chu\r\n"
    'H29.001,Nguyễn Văn An,"12 Lê Lợi, phường Bến Nghé",50000,\r\n'
    'H29.002,Trần Thị Bích,"Tổ 5,\r\nấp Tân Hòa",,"Bổ sung ""giấy tờ"""\r\n'
)

JSON = """[
  {"ma_ho_so": "H29.003", "chu_ho_so": "Lê Hoàng Đức", "le_phi": 0, "giay_to": []},
  {"ma_ho_so": "H29.004", "chu_ho_so": "Phạm Minh Châu", "le_phi": 120000.5, "giay_to": null}
]"""

XML = """<?xml version="1.0" encoding="UTF-8"?>
<DanhSachHoSo>
  <HoSo>
    <MaHoSo>H29.005</MaHoSo>
    <ChuHoSo>Võ Thị Hạnh</ChuHoSo>
    <GhiChu></GhiChu>
    <GiayTo>
      <Tep><Ten>Tờ khai</Ten><SoBan>1</SoBan></Tep>
      <Tep><Ten>Bản sao CCCD</Ten><SoBan>2</SoBan></Tep>
    </GiayTo>
  </HoSo>
  <HoSo>
    <MaHoSo>H29.006</MaHoSo>
    <ChuHoSo>Đặng Quốc Bảo</ChuHoSo>
    <GhiChu>
    </GhiChu>
    <GiayTo/>
  </HoSo>
</DanhSachHoSo>
"""


def drop(folder: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def source(folder: Path, **settings: Any) -> FileDrop:
    return FileDrop(FileDropSettings(**({"folder": folder, "settle_seconds": 0} | settings)))


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def fetch(drop_source: FileDrop) -> Batch:
    await drop_source.open()
    return await drop_source.fetch(None, 100)


async def fetch_and_commit(drop_source: FileDrop) -> Batch:
    batch = await fetch(drop_source)
    await drop_source.committed(batch)
    return batch


def names(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


# -- formats -------------------------------------------------------------------------------


def test_a_csv_export_is_read_with_its_bom_quoted_cells_and_empty_cells_as_none(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "hoso-0701.csv", CSV, encoding="utf-8-sig")
    batch = run(fetch(source(tmp_path)))
    assert batch.records == [
        {
            "ma_ho_so": "H29.001",
            "chu_ho_so": "Nguyễn Văn An",
            "dia_chi": "12 Lê Lợi, phường Bến Nghé",
            "le_phi": "50000",
            "ghi_chu": None,
        },
        {
            "ma_ho_so": "H29.002",
            "chu_ho_so": "Trần Thị Bích",
            "dia_chi": "Tổ 5,\r\nấp Tân Hòa",
            "le_phi": None,
            "ghi_chu": 'Bổ sung "giấy tờ"',
        },
    ]
    assert (batch.ref, batch.cursor, batch.problem) == ("hoso-0701.csv", None, None)
    assert list(batch.refs) == ["hoso-0701.csv:row 2", "hoso-0701.csv:row 3"]


def test_csv_rows_of_empty_cells_are_skipped_and_rows_keep_their_spreadsheet_numbers(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "hoso.csv", "ma_ho_so,chu_ho_so\n,\nH29.001,An\n\nH29.002\n,,\n")
    batch = run(fetch(source(tmp_path)))
    assert batch.records == [
        {"ma_ho_so": "H29.001", "chu_ho_so": "An"},
        {"ma_ho_so": "H29.002", "chu_ho_so": None},  # a short row: the missing cells are None
    ]
    assert list(batch.refs) == ["hoso.csv:row 3", "hoso.csv:row 5"]


def test_a_csv_in_another_encoding_is_read_in_the_configured_one(tmp_path: Path) -> None:
    drop(tmp_path, "hoso.csv", "ma_ho_so,chu_ho_so\nH29.001,Nguyễn Văn An\n", encoding="utf-16")
    batch = run(fetch(source(tmp_path, encoding="utf-16")))
    assert batch.records == [{"ma_ho_so": "H29.001", "chu_ho_so": "Nguyễn Văn An"}]


def test_a_json_export_is_an_array_of_records_with_their_own_types(tmp_path: Path) -> None:
    drop(tmp_path, "hoso.json", JSON, encoding="utf-8-sig")
    batch = run(fetch(source(tmp_path)))
    assert batch.records[0] == {
        "ma_ho_so": "H29.003",
        "chu_ho_so": "Lê Hoàng Đức",
        "le_phi": 0,
        "giay_to": [],
    }
    assert batch.records[1]["le_phi"] == 120000.5
    assert list(batch.refs) == ["hoso.json:item 1", "hoso.json:item 2"]


def test_a_json_export_may_hold_its_records_in_items_beside_other_fields(tmp_path: Path) -> None:
    drop(tmp_path, "hoso.json", '{"xuat_luc": "2025-07-01", "items": ' + JSON + "}")
    batch = run(fetch(source(tmp_path)))
    assert [record["ma_ho_so"] for record in batch.records] == ["H29.003", "H29.004"]


def test_an_xml_export_gives_a_record_per_element_and_lists_for_elements_with_children(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "hoso.xml", XML)
    batch = run(fetch(source(tmp_path)))
    assert batch.records == [
        {
            "MaHoSo": "H29.005",
            "ChuHoSo": "Võ Thị Hạnh",
            "GhiChu": None,
            "GiayTo": [{"Ten": "Tờ khai", "SoBan": "1"}, {"Ten": "Bản sao CCCD", "SoBan": "2"}],
        },
        # A blank element, even over two lines, is None; so is an empty list: XML cannot
        # tell the two apart.
        {"MaHoSo": "H29.006", "ChuHoSo": "Đặng Quốc Bảo", "GhiChu": None, "GiayTo": None},
    ]
    assert list(batch.refs) == ["hoso.xml:record 1", "hoso.xml:record 2"]


def test_xml_attributes_are_fields_and_namespaces_are_dropped_from_names(tmp_path: Path) -> None:
    drop(
        tmp_path,
        "hoso.xml",
        '<ds xmlns="urn:motcua">'
        '<HoSo MaHoSo="H29.007"><ChuHoSo>Bùi Thu Trang</ChuHoSo></HoSo>'
        "</ds>",
    )
    batch = run(fetch(source(tmp_path)))
    assert batch.records == [{"MaHoSo": "H29.007", "ChuHoSo": "Bùi Thu Trang"}]


def test_an_xml_export_in_its_declared_encoding_is_read_whatever_the_setting(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "hoso.xml", XML.replace('"UTF-8"', '"UTF-16"'), encoding="utf-16")
    batch = run(fetch(source(tmp_path)))
    assert batch.records[1]["ChuHoSo"] == "Đặng Quốc Bảo"


# -- broken files --------------------------------------------------------------------------

BROKEN = [
    ("hoso.csv", "ma_ho_so,chu_ho_so\nH29.001,An,thừa\n", "row 2 has 3 cells, the header 2"),
    ("hoso.csv", "", "no header row"),
    ("hoso.csv", "ma_ho_so,,ghi_chu\nH29.001,An,\n", "the header row has no name for column 2"),
    ("hoso.csv", "ma,ten,ma\n1,2,3\n", "the header row names ma more than once"),
    ("hoso.csv", "ma,ten\n1,Trân\n".encode("cp1258"), "not utf-8-sig text (line 2, byte 11)"),
    ("hoso.json", '[{"ma_ho_so": "H29.001",}]', "not valid JSON ("),
    ("hoso.json", '{"ma_ho_so": "H29.001"}', "not records: expected an array of objects"),
    ("hoso.json", '[{"ma_ho_so": "H29.001"}, "H29.002"]', "item 2 is a str, not a record"),
    ("hoso.xml", "<ds><HoSo><MaHoSo>H29.001</HoSo></ds>", "not well-formed XML (mismatched tag"),
    ("hoso.xml", "<ds><HoSo><a>1</a><a>2</a></HoSo></ds>", "record 1 has the field 'a' more"),
    ("hoso.xlsx", b"PK\x03\x04", "unknown file type '.xlsx': file_drop reads .csv, .json and .xml"),
    ("HOSO", "ma_ho_so\nH29.001\n", "unknown file name without an extension"),
]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    BROKEN,
    ids=[
        "csv with a long row",
        "empty csv",
        "csv with a nameless column",
        "csv naming a column twice",
        "csv in cp1258",
        "json with a trailing comma",
        "json object without items",
        "json array of strings",
        "xml not well-formed",
        "xml with a repeated field",
        "an excel file",
        "no extension",
    ],
)
def test_a_broken_file_is_a_problem_batch_and_moves_to_rejected_with_its_reason(
    tmp_path: Path, name: str, content: str | bytes, problem: str
) -> None:
    drop(tmp_path, name, content)
    batch = run(fetch_and_commit(source(tmp_path)))
    assert (batch.records, batch.ref) == ([], name)
    assert batch.problem is not None
    assert batch.problem.startswith(problem)
    assert names(tmp_path) == [f"rejected/{name}", f"rejected/{name}.reason.txt"]
    assert (tmp_path / "rejected" / f"{name}.reason.txt").read_text("utf-8") == f"{batch.problem}\n"


@pytest.mark.parametrize(
    "content",
    [
        '<?xml version="1.0"?><!DOCTYPE ds [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        "<ds><HoSo><Ten>&b;</Ten></HoSo></ds>",
        '<?xml version="1.0"?><!DOCTYPE ds [<!ENTITY mk SYSTEM "file:///etc/passwd">]>'
        "<ds><HoSo><Ten>&mk;</Ten></HoSo></ds>",
        '<!DOCTYPE ds SYSTEM "http://example.invalid/ds.dtd"><ds/>',
    ],
    ids=["entity expansion", "external entity", "external DTD"],
)
def test_an_xml_doctype_is_refused_before_any_entity_is_read(tmp_path: Path, content: str) -> None:
    drop(tmp_path, "hoso.xml", content)
    batch = run(fetch(source(tmp_path)))
    assert batch.records == []
    assert batch.problem == "a DOCTYPE declaration: refused, as entities could be hidden in it"


# -- which file, and where it goes ---------------------------------------------------------


def test_files_come_oldest_name_first_one_batch_each_and_the_last_one_is_done(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "hoso-0702.json", JSON)
    drop(tmp_path, "hoso-0701.csv", CSV)
    drop(tmp_path, "hoso-0703.xml", XML)

    async def all_batches() -> list[Batch]:
        poll = source(tmp_path)
        await poll.open()
        batches = []
        while not (batch := await poll.fetch(None, 1)).done or batch.ref:
            await poll.committed(batch)
            batches.append(batch)
        return batches

    batches = run(all_batches())
    assert [b.ref for b in batches] == ["hoso-0701.csv", "hoso-0702.json", "hoso-0703.xml"]
    assert [len(b.records) for b in batches] == [2, 2, 2]  # a whole file, whatever the limit
    assert [b.done for b in batches] == [False, False, True]
    assert names(tmp_path) == ["done/hoso-0701.csv", "done/hoso-0702.json", "done/hoso-0703.xml"]


def test_a_file_is_moved_only_when_committed_so_it_is_read_again_until_then(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "hoso.csv", CSV)
    poll = source(tmp_path)
    first, again = run(fetch(poll)), run(fetch(poll))
    assert first == again
    run(poll.committed(first))
    assert names(tmp_path) == ["done/hoso.csv"]


def test_an_empty_folder_gives_an_empty_done_batch_whose_commit_does_nothing(
    tmp_path: Path,
) -> None:
    batch = run(fetch_and_commit(source(tmp_path)))
    assert (batch.records, batch.cursor, batch.done, batch.problem) == ([], None, True, None)
    assert names(tmp_path) == []


def test_a_name_already_taken_in_done_gets_a_number_instead_of_overwriting(
    tmp_path: Path,
) -> None:
    (tmp_path / "done").mkdir()
    drop(tmp_path / "done", "hoso.csv", "cũ")
    drop(tmp_path / "done", "hoso-1.csv", "cũ nữa")
    drop(tmp_path, "hoso.csv", CSV)
    run(fetch_and_commit(source(tmp_path)))
    assert names(tmp_path) == ["done/hoso-1.csv", "done/hoso-2.csv", "done/hoso.csv"]
    assert (tmp_path / "done" / "hoso-2.csv").read_bytes() == CSV.encode()


def test_committing_a_file_already_moved_is_harmless(tmp_path: Path) -> None:
    drop(tmp_path, "hoso.json", JSON)

    async def committed_twice() -> None:
        batch = await fetch_and_commit(source(tmp_path))
        await source(tmp_path).committed(batch)

    run(committed_twice())
    assert names(tmp_path) == ["done/hoso.json"]


def test_done_and_rejected_folders_can_be_named_elsewhere(tmp_path: Path) -> None:
    inbox = tmp_path / "xuat"
    inbox.mkdir()
    drop(inbox, "a.csv", CSV)
    drop(inbox, "b.txt", "?")
    poll = source(inbox, done_dir="da-xu-ly", rejected_dir=tmp_path / "loi")
    run(fetch_and_commit(poll))
    run(fetch_and_commit(poll))
    assert names(tmp_path) == ["loi/b.txt", "loi/b.txt.reason.txt", "xuat/da-xu-ly/a.csv"]


def test_hidden_partial_temporary_files_and_folders_are_left_alone(tmp_path: Path) -> None:
    drop(tmp_path, ".hoso.csv", CSV)
    drop(tmp_path, "hoso.csv.part", CSV)
    drop(tmp_path, "hoso.json.TMP", JSON)
    (tmp_path / "cu.csv").mkdir()
    batch = run(fetch_and_commit(source(tmp_path)))
    assert (batch.ref, batch.done) == ("", True)
    assert names(tmp_path) == [".hoso.csv", "hoso.csv.part", "hoso.json.TMP"]


def test_a_file_changed_within_settle_seconds_waits_until_it_has_settled(tmp_path: Path) -> None:
    path = drop(tmp_path, "hoso.csv", CSV)
    assert run(fetch(source(tmp_path, settle_seconds=60))).ref == ""
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    assert run(fetch(source(tmp_path, settle_seconds=60))).ref == "hoso.csv"


def test_only_files_matching_the_pattern_are_read(tmp_path: Path) -> None:
    drop(tmp_path, "bao-cao.csv", CSV)
    drop(tmp_path, "hoso-0701.csv", CSV)
    assert run(fetch(source(tmp_path, pattern="hoso-*.csv"))).ref == "hoso-0701.csv"


# -- the rest ------------------------------------------------------------------------------


def test_sample_gives_at_most_limit_records_and_says_why_a_file_cannot_be_sampled(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "a.json", JSON)
    assert [r["ma_ho_so"] for r in run(source(tmp_path).sample(1))] == ["H29.003"]
    assert names(tmp_path) == ["a.json"]  # sampling moves nothing
    (tmp_path / "a.json").unlink()
    drop(tmp_path, "b.json", "[")
    with pytest.raises(SourceError, match=r"b\.json: not valid JSON"):
        run(source(tmp_path).sample(1))


def test_opening_a_folder_that_does_not_exist_says_which(tmp_path: Path) -> None:
    missing = tmp_path / "khong-co"
    with pytest.raises(SourceError, match="the folder does not exist; check folder") as raised:
        run(source(missing).open())
    assert str(raised.value).startswith(f"file_drop {missing}/*: ")


def test_settings_refuse_an_unknown_encoding_and_a_negative_settle_time(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown encoding: utf8x"):
        FileDropSettings(folder=tmp_path, encoding="utf8x")
    with pytest.raises(ValidationError, match="settle_seconds"):
        FileDropSettings(folder=tmp_path, settle_seconds=-1)


def test_file_drop_is_a_registered_kind() -> None:
    assert KINDS["file_drop"] is FileDrop
    assert FileDrop.settings_model is FileDropSettings
