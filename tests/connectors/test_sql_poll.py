"""`sql_poll` against real databases: a SQLite file, and a scratch database on the local
PostgreSQL (127.0.0.1:5432, user postgres, trust authentication), skipped when there is none."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Column, DateTime, MetaData, Numeric, String, Table, create_engine

from connectors.kinds import KINDS
from connectors.kinds.sql_poll import SqlPoll, SqlPollSettings
from connectors.source import Batch, SourceError

URL_ENV = "TEST_SQL_POLL_URL"
QUERY = """
    SELECT ma_ho_so, chu_ho_so, le_phi, cap_nhat_luc FROM ho_so
    WHERE cap_nhat_luc >= :cursor
    ORDER BY cap_nhat_luc, ma_ho_so
    LIMIT :limit
"""
START = "1970-01-01 00:00:00"

metadata = MetaData()
ho_so = Table(
    "ho_so",
    metadata,
    Column("ma_ho_so", String(40), primary_key=True),
    Column("chu_ho_so", String(200)),
    Column("le_phi", Numeric(12, 2)),
    Column("cap_nhat_luc", DateTime),
)
ROWS = [
    ("H29.001", "Nguyễn Văn An", Decimal("50000.00"), datetime(2025, 7, 1, 8, 0)),
    ("H29.002", "Trần Thị Bích", None, datetime(2025, 7, 1, 8, 5)),
    ("H29.003", "Lê Hoàng Đức", Decimal("0.00"), datetime(2025, 7, 1, 8, 5)),  # same instant
    ("H29.004", "Phạm Minh Châu", Decimal("120000.50"), datetime(2025, 7, 1, 9, 0)),
    ("H29.005", "Võ Thị Hạnh", None, datetime(2025, 7, 1, 10, 30, 0, 250000)),
]


def filled(url: str) -> str:
    """`url`, its `ho_so` table made afresh and holding `ROWS`."""
    engine = create_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            ho_so.insert(), [dict(zip(ho_so.c.keys(), row, strict=True)) for row in ROWS]
        )
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database holding `ROWS` in `ho_so`, afresh for each test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'motcua.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres")
    return filled(url)


@pytest.fixture
def postgres_url(postgres: str) -> str:
    """The same table on PostgreSQL only, for what only a server shows."""
    return filled(postgres)


def source(url: str | None, **settings: Any) -> SqlPoll:
    defaults: dict[str, Any] = {
        "query": QUERY,
        "cursor_column": "cap_nhat_luc",
        "initial_cursor": START,
    }
    if url is not None:
        defaults["url"] = url
    return SqlPoll(SqlPollSettings(**(defaults | settings)))


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def fetches(poll: SqlPoll, *pages: tuple[str | None, int]) -> list[Batch]:
    await poll.open()
    try:
        return [await poll.fetch(cursor, limit) for cursor, limit in pages]
    finally:
        await poll.close()


async def failure(poll: SqlPoll) -> str:
    with pytest.raises(SourceError) as raised:
        await fetches(poll, (None, 10))
    return str(raised.value)


def codes(batch: Batch) -> list[str]:
    return [row["ma_ho_so"] for row in batch.records]


# -- paging --------------------------------------------------------------------------------


def test_rows_come_as_dicts_in_cursor_order_with_the_last_rows_cursor(url: str) -> None:
    [batch] = run(fetches(source(url), (None, 2)))
    assert codes(batch) == ["H29.001", "H29.002"]
    assert batch.records[0]["chu_ho_so"] == "Nguyễn Văn An"
    assert set(batch.records[0]) == {"ma_ho_so", "chu_ho_so", "le_phi", "cap_nhat_luc"}
    assert batch.cursor is not None
    assert batch.cursor.startswith("2025-07-01 08:05:00")
    assert not batch.done


def test_the_next_page_starts_at_the_cursor_so_rows_sharing_it_come_again(url: str) -> None:
    [first] = run(fetches(source(url), (None, 2)))
    [second] = run(fetches(source(url), (first.cursor, 2)))
    assert codes(second) == ["H29.002", "H29.003"]


def test_a_page_shorter_than_the_limit_is_done_and_an_empty_one_keeps_the_cursor(url: str) -> None:
    short, empty = run(fetches(source(url), ("2025-07-01 09:00:00", 10), ("2026-01-01", 10)))
    assert codes(short) == ["H29.004", "H29.005"]
    assert short.done
    assert (empty.records, empty.cursor, empty.done) == ([], None, True)


def test_a_datetime_cursor_is_written_so_the_database_reads_the_same_instant_back(
    postgres_url: str,
) -> None:
    [last] = run(fetches(source(postgres_url), ("2025-07-01 10:00:00", 10)))
    assert last.cursor == "2025-07-01 10:30:00.250000"
    [again] = run(fetches(source(postgres_url), (last.cursor, 10)))
    assert codes(again) == ["H29.005"]


def test_values_keep_the_types_the_database_driver_gives(postgres_url: str) -> None:
    [batch] = run(fetches(source(postgres_url), (None, 1)))
    assert batch.records[0]["le_phi"] == Decimal("50000.00")
    assert batch.records[0]["cap_nhat_luc"] == datetime(2025, 7, 1, 8, 0)


def test_a_slow_query_leaves_the_event_loop_free(postgres_url: str) -> None:
    slow = QUERY.replace("SELECT ma_ho_so,", "SELECT pg_sleep(0.6) AS ngu, ma_ho_so,")

    async def ticks_during_fetch() -> int:
        poll = source(postgres_url, query=slow)
        await poll.open()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await poll.fetch(None, 1)
        ticker.cancel()
        await poll.close()
        return ticks

    assert run(ticks_during_fetch()) >= 5


def test_check_runs_the_query_once(url: str) -> None:
    async def checked() -> None:
        poll = source(url)
        await poll.open()
        await poll.check()
        await poll.close()

    run(checked())


# -- the URL -------------------------------------------------------------------------------


def test_the_url_may_come_from_an_environment_variable_and_its_password_is_never_shown(
    postgres: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust authentication ignores the password, which lets the test give one.
    monkeypatch.setenv(URL_ENV, postgres.replace("postgres@", "postgres:mat-khau-bi-mat@"))
    poll = source(None, url_env=URL_ENV)
    assert poll.describe() == f"sql_poll (the URL in environment variable {URL_ENV})"
    [batch] = run(fetches(poll, (None, 1)))
    assert codes(batch) == ["H29.001"]
    assert "mat-khau" not in poll.describe()
    assert "postgres:***@127.0.0.1" in poll.describe()


def test_opening_without_the_url_variable_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises(SourceError, match=f"environment variable {URL_ENV} .* is not set"):
        run(source(None, url_env=URL_ENV).open())


def test_a_variable_holding_no_url_says_so_without_showing_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(URL_ENV, "mat-khau-bi-mat")
    with pytest.raises(SourceError, match="does not hold a SQLAlchemy URL") as raised:
        run(source(None, url_env=URL_ENV).open())
    assert "mat-khau" not in str(raised.value)


def test_an_unreachable_database_cannot_connect_and_says_what_to_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    message = run(failure(source(f"postgresql+psycopg://postgres@127.0.0.1:{port}/motcua")))
    assert message.startswith(f"sql_poll postgresql+psycopg://postgres@127.0.0.1:{port}/motcua")
    assert "cannot connect (" in message
    assert "check the URL and that the database is up" in message
    assert "\n" not in message


def test_an_unknown_driver_is_a_readable_error_when_opening() -> None:
    with pytest.raises(SourceError, match="cannot use this URL"):
        run(source("mssql+nosuchdriver://h/db").open())


def test_settings_want_exactly_one_of_url_and_url_env() -> None:
    with pytest.raises(ValidationError, match="either url or url_env"):
        SqlPollSettings(query=QUERY, cursor_column="c")
    with pytest.raises(ValidationError, match="either url or url_env"):
        SqlPollSettings(url="sqlite://", url_env=URL_ENV, query=QUERY, cursor_column="c")


def test_settings_refuse_a_password_in_the_config_file_and_point_to_url_env() -> None:
    with pytest.raises(ValidationError, match=r"holds a password: .* url_env") as raised:
        SqlPollSettings(url="postgresql://u:mat-khau@h/db", query=QUERY, cursor_column="c")
    assert "mat-khau" not in str(raised.value)


def test_settings_refuse_a_url_sqlalchemy_cannot_parse() -> None:
    with pytest.raises(ValidationError, match="Could not parse SQLAlchemy URL"):
        SqlPollSettings(url="motcua database", query=QUERY, cursor_column="c")


# -- the query -----------------------------------------------------------------------------


def test_settings_refuse_a_query_without_the_cursor_and_limit_parameters() -> None:
    with pytest.raises(ValidationError, match="must use :cursor and :limit"):
        SqlPollSettings(url="sqlite://", query="SELECT * FROM ho_so", cursor_column="c")
    with pytest.raises(ValidationError, match="must use :limit"):
        SqlPollSettings(
            url="sqlite://", query="SELECT * FROM ho_so WHERE c >= :cursor", cursor_column="c"
        )


def test_a_failing_query_gives_the_databases_own_reason_on_one_line(url: str) -> None:
    message = run(failure(source(url, query=QUERY.replace("FROM ho_so", "FROM hoso"))))
    assert "the query failed (" in message
    assert "hoso" in message
    assert message.endswith("; check query")
    assert "\n" not in message
    assert "sqlalche.me" not in message  # SQLAlchemy's link and statement dump are left out


def test_a_query_without_the_cursor_column_names_the_columns_it_returns(url: str) -> None:
    message = run(failure(source(url, cursor_column="ngay_sua")))
    assert "returns no 'ngay_sua' column" in message
    assert "(it returns: ma_ho_so, chu_ho_so, le_phi, cap_nhat_luc)" in message


def test_sql_poll_is_a_registered_kind() -> None:
    assert KINDS["sql_poll"] is SqlPoll
    assert SqlPoll.settings_model is SqlPollSettings
