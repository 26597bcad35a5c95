"""Bad rows in a ministry's database, read by `sql_poll`: each lands in the connector's reject
store with its reason (personal data masked, as `bus connector rejects` lists it), the
cursor moves on, and every good row beside them reaches the portal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from badinput_support import EXAMPLES, final_rows, good_only, rejected, synced, through
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.config import load_config
from connectors.mapping import MappingError, RecordMapping
from connectors.sample.database import LocalDatabase

AGENCY = "000.00.01.G01"
[ROW], _ = final_rows(AGENCY, 1, seed=72)

# (what is wrong, the change to the row, words of the reason)
SPOILERS: list[tuple[str, dict[str, Any], str]] = [
    ("a NULL where required", {"trang_thai": None}, "trang_thai"),
    ("an invalid dossier code", {"ma_ho_so": "G01/2025/HS-0001"}, "code"),
    ("a dossier code of another unit", {"ma_ho_so": "000.00.01.H29-250701-0001"}, "unit"),
    ("a date that does not parse", {"ngay_nop": "31/02/2025 9h"}, "ngay_nop"),
    ("an unmapped local status", {"trang_thai": "KHONG_CO_MA"}, "KHONG_CO_MA"),
    ("a version that is no number", {"phien_ban": "v2"}, "phien_ban"),
]


def test_bad_rows_are_rejected_with_their_reasons_and_every_good_row_reaches_the_portal(
    vhost: str, tmp_path: Path
) -> None:
    rows, expected = final_rows(AGENCY, 24, seed=71)
    spoiled_rows, gone = [], set()
    for index, (_, change, _) in enumerate(SPOILERS):
        at = 2 + 3 * index  # among good rows, before and after
        gone.add(str(rows[at]["ma_ho_so"]))
        rows[at] = {**rows[at], **change}
        spoiled_rows.append(rows[at])
    url = f"sqlite:///{tmp_path / 'g01.sqlite3'}"
    with LocalDatabase(url) as database:
        database.create_table()
        database.write(rows)

    async def scenario() -> tuple[list[str], Any]:
        async with through(vhost, tmp_path, "sql_poll", url=url) as pipeline:
            problems = await synced(pipeline.portal, "G01", good_only(expected, gone))
            await rejected(pipeline, len(SPOILERS))
        return problems, pipeline

    problems, pipeline = asyncio.run(scenario())

    assert problems == []
    listed = pipeline.rejects()
    assert len(listed) == len(SPOILERS)
    by_code = {reject["dossier_code"]: reject for reject in listed}
    for (what, _, words), row in zip(SPOILERS, spoiled_rows, strict=True):
        reject = by_code[str(row["ma_ho_so"])]
        assert words in reject["reason"], (what, reject["reason"])
        assert reject["record"]["so_giay_to"] != row["so_giay_to"], what  # masked
        assert str(row["so_giay_to"]) not in str(reject["record"])
    shown = pipeline.rejects_shown()
    assert f"g01-dvc: {len(SPOILERS)} rejected" in shown


# Values a database column may hold where a date belongs, none of them a local time.
NOT_DATES = st.one_of(
    st.text(min_size=1, max_size=19).filter(
        lambda text: text.strip() != "" and not text.strip()[:4].isdigit()
    ),
    st.integers(-(10**6), 999).map(str),
)


@settings(max_examples=40, deadline=None)
@given(value=NOT_DATES, field=st.sampled_from(["ngay_nop", "ngay_tiep_nhan", "ngay_hen_tra"]))
def test_any_value_that_is_no_date_where_a_date_belongs_is_refused_with_the_fields_name(
    value: str, field: str
) -> None:
    # The mapping alone, against every generated value: the end-to-end test above shows a
    # refused row takes the reject path and leaves the others flowing.
    mapping = RecordMapping(load_config(EXAMPLES / "sql_poll.toml"))
    with pytest.raises(MappingError, match=field):
        mapping.event({**ROW, field: value}, None)
