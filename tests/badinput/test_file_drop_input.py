"""Bad files dropped for a `file_drop` connector among good exports: a file that cannot be
read moves to rejected/ with a reason file saying why, and is kept in the reject store; a
bad row in a good file is refused alone while its file's good rows go on; every dossier of
the good files and rows reaches the portal, and none that only bad input named."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from badinput_support import (
    connector_config,
    connector_settings,
    final_rows,
    good_only,
    rejected,
    synced,
    through,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.runner import Connector
from connectors.sample.files import WRITERS, export

AGENCY = "000.00.01.H31"
Rows = list[dict[str, Any]]


def csv_with_extra_cells(rows: Rows) -> bytes:
    body = WRITERS["csv"](rows).decode()
    header, first, *rest = body.split("\r\n")
    return "\r\n".join([header, first + ",một ô thừa", *rest]).encode()


def csv_with_unterminated_quote(rows: Rows) -> bytes:
    return (
        WRITERS["csv"](rows) + b'"Ghi ch\xc3\xba m\xe1\xbb\x9f ngo\xe1\xba\xb7c k\xc3\xa9p,1,2\r\n'
    )


def xml_with_doctype(rows: Rows) -> bytes:
    lols = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    doctype = f'<!DOCTYPE ho_so_list [<!ENTITY lol0 "lol">{lols}]>\n'
    body = WRITERS["xml"](rows).decode()
    head, _, tail = body.partition("\n")
    return f"{head}\n{doctype}{tail}".replace(
        "</ho_so>", "<ghi_chu>&lol9;</ghi_chu></ho_so>", 1
    ).encode()


def xml_nested_too_deep(rows: Rows) -> bytes:
    deep = "<muc>" * 5000 + "sâu" + "</muc>" * 5000
    return (
        WRITERS["xml"](rows)
        .decode()
        .replace("</ho_so>", f"<ghi_chu>{deep}</ghi_chu></ho_so>", 1)
        .encode()
    )


def latin1_json(rows: Rows) -> bytes:
    return WRITERS["json"](rows).decode().encode("latin-1", errors="replace")


# (file name, its bytes from the rows only it names, words of the reason)
BROKEN: list[tuple[str, Any, str]] = [
    ("02_extra_cells.csv", csv_with_extra_cells, "cells"),
    ("04_unterminated_quote.csv", csv_with_unterminated_quote, "not valid CSV"),
    ("05_truncated.json", lambda rows: WRITERS["json"](rows)[:-40], "not valid JSON"),
    ("06_truncated.xml", lambda rows: WRITERS["xml"](rows)[:-30], "not well-formed XML"),
    ("07_entities.xml", xml_with_doctype, "DOCTYPE"),
    ("08_nested.xml", xml_nested_too_deep, "deep"),
    ("09_utf16.csv", lambda rows: WRITERS["csv"](rows).decode().encode("utf-16"), "encoding"),
    ("10_latin1.json", latin1_json, "encoding"),
]


def test_broken_files_are_rejected_with_a_reason_and_every_good_file_and_row_reaches_the_portal(
    vhost: str, tmp_path: Path
) -> None:
    rows, expected = final_rows(AGENCY, 36, seed=91)
    folder = tmp_path / "drop"
    folder.mkdir()
    export(rows[0:6], folder, "csv", prefix="01_good")
    export(rows[6:12], folder, "json", prefix="03_good")
    export(rows[12:18], folder, "xml", prefix="05_good")
    # One good file with bad rows among its good rows.
    unmapped = {**rows[20], "trang_thai": "KHONG_CO_MA"}
    invalid_code = {**rows[23], "ma_ho_so": "H31/2025/HS-0023"}
    mixed = [*rows[18:20], unmapped, *rows[21:23], invalid_code, *rows[24:26]]
    export(mixed, folder, "csv", prefix="07_mixed")
    spare = rows[26:]
    for index, (name, content, _) in enumerate(BROKEN):
        (folder / name).write_bytes(content(spare[index : index + 1]))
    gone = {str(row["ma_ho_so"]) for row in [rows[20], rows[23], *spare]}
    assert b"\xe1\xbb" not in latin1_json(spare)  # no Vietnamese letter left whole in UTF-8

    async def scenario() -> tuple[list[str], Any]:
        async with through(
            vhost, tmp_path, "file_drop", folder=str(folder), settle_seconds=0
        ) as pipeline:
            problems = await synced(
                pipeline.portal, "H31", good_only(expected, gone), unexpected=gone
            )
            await rejected(pipeline, len(BROKEN) + 2)
        return problems, pipeline

    problems, pipeline = asyncio.run(scenario())

    assert problems == []
    left = [path.name for path in folder.iterdir() if path.is_file()]
    assert left == [], "every file moved on"
    done = sorted(path.name[:7] for path in (folder / "done").iterdir())
    assert done == ["01_good", "03_good", "05_good", "07_mixe"]
    listed = pipeline.rejects()
    assert len(listed) == len(BROKEN) + 2
    by_ref = {reject["ref"]: reject for reject in listed}
    for name, _, words in BROKEN:
        reason = (folder / "rejected" / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert words in reason, (name, reason)
        assert (folder / "rejected" / name).is_file(), name
        assert by_ref[name]["reason"] == reason.strip(), name
        assert by_ref[name]["dossier_code"] == ""
    by_code = {reject["dossier_code"]: reject for reject in listed if reject["dossier_code"]}
    assert set(by_code) == {unmapped["ma_ho_so"], invalid_code["ma_ho_so"]}
    assert "KHONG_CO_MA" in by_code[unmapped["ma_ho_so"]]["reason"]
    assert "code" in by_code[invalid_code["ma_ho_so"]]["reason"]
    assert by_code[unmapped["ma_ho_so"]]["ref"].endswith(":row 4")  # the header is row 1
    for row in (unmapped, invalid_code):
        record = by_code[str(row["ma_ho_so"])]["record"]
        for personal in ("so_giay_to", "dien_thoai"):  # masked
            assert record[personal] != row[personal], personal


GOOD, _ = final_rows(AGENCY, 3, seed=92)


@settings(max_examples=25, deadline=None)
@given(
    garbage=st.binary(min_size=1, max_size=4000), extension=st.sampled_from(["csv", "json", "xml"])
)
def test_any_bytes_dropped_as_a_file_are_refused_with_a_reason_and_never_stop_the_files_after_them(
    garbage: bytes, extension: str
) -> None:
    # Two polls of a connector, without a broker: what matters is where the file ends and
    # that the good export after it is read; the end-to-end test above shows the rest.
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder = root / "drop"
        folder.mkdir()
        name = f"01_garbage.{extension}"
        (folder / name).write_bytes(garbage)
        export(GOOD, folder, "json", prefix="02_good")
        _, config = connector_config("file_drop", root, folder=str(folder), settle_seconds=0)
        connector = Connector(config, connector_settings("amqp://127.0.0.1/", "h31-files"))
        try:
            asyncio.run(connector.poll_once())
            asyncio.run(connector.poll_once())
            rejects = connector.outbox.rejects()
            assert connector.committed == len(GOOD)  # the good file's, and no garbage's
        finally:
            connector.outbox.close()
        assert [path for path in folder.iterdir() if path.is_file()] == []
        if (folder / "rejected" / name).exists():
            reason = (folder / "rejected" / f"{name}.reason.txt").read_text(encoding="utf-8")
            assert [r.reason for r in rejects] == [reason.strip()]
        else:
            # Bytes that happen to be a readable CSV: read as records, none of them mappable.
            assert extension == "csv"
            assert (folder / "done" / name).is_file()
            assert connector.rejected == connector.read - len(GOOD)
