"""The per-dossier state store, on SQLite and on PostgreSQL alike.

PostgreSQL is the one BUS_TEST_POSTGRES_URL names, by default the local one with trust auth;
each test gets a schema of its own, dropped after it.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from bus.errors import StoreUnavailable
from bus.sync.store import AppliedRow, StateStore, open_store

POSTGRES_URL = os.environ.get("BUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2024, 1, 15, 8, 30, tzinfo=UTC)


def code(n: int, unit: str = "H29") -> str:
    return f"000.00.01.{unit}-240115-{n:04d}"


def a_row(n: int = 1, seq: int = 1, unit: str = "H29", **changes: Any) -> AppliedRow:
    fields: dict[str, Any] = {
        "dossier_code": code(n, unit),
        "unit": unit,
        "seq": seq,
        "progress_count": 2,
        "applied_at": T0,
        "body": f'{{"seq": {seq}}}'.encode(),
        "message_id": str(uuid.uuid4()),
        "type": "status_changed",
        "app_id": "igate-hcm",
        "timestamp": 1705307400,
        "headers": {"x-dossier-code": code(n, unit), "x-seq": seq, "x-signature": "c2ln"},
    }
    return AppliedRow(**{**fields, **changes})


def postgres_schema_url() -> Iterator[str]:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        message = f"no PostgreSQL at {POSTGRES_URL} (set BUS_TEST_POSTGRES_URL): {error}"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            # Every connection of the test, the store's included, lands in its schema.
            options = quote(f"-csearch_path={schema}")
            yield f"{POSTGRES_URL}?options={options}&application_name={schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_schema_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


def with_store(url: str, scenario: Callable[[StateStore], Coroutine[Any, Any, Any]]) -> Any:
    async def run() -> Any:
        async with open_store(url) as store:
            return await scenario(store)

    return asyncio.run(run())


def test_get_answers_the_recorded_state_of_each_known_dossier_and_leaves_unknown_ones_out(
    store_url: str,
) -> None:
    async def scenario(store: StateStore) -> Any:
        await store.record([a_row(1, seq=4), a_row(2, seq=9, on_portal=False)])
        return await store.get([code(1), code(2), code(3)])

    found = with_store(store_url, scenario)
    assert sorted(found) == [code(1), code(2)]
    assert (found[code(1)].seq, found[code(1)].progress_count, found[code(1)].on_portal) == (
        4,
        2,
        True,
    )
    assert (found[code(2)].seq, found[code(2)].on_portal) == (9, False)


def test_get_of_no_codes_is_empty_and_of_many_codes_finds_them_all(store_url: str) -> None:
    async def scenario(store: StateStore) -> tuple[Any, Any]:
        await store.record([a_row(n) for n in range(1, 1201)])
        return await store.get([]), await store.get([code(n) for n in range(1, 1301)])

    nothing, many = with_store(store_url, scenario)
    assert nothing == {}
    assert len(many) == 1200


def test_recording_seq_3_after_seq_5_leaves_seq_5_and_its_message(store_url: str) -> None:
    async def scenario(store: StateStore) -> tuple[Any, list[AppliedRow]]:
        await store.record([a_row(seq=5)])
        await store.record([a_row(seq=3, applied_at=T0 + timedelta(hours=1))])
        return await store.get([code(1)]), [row async for row in store.applied("H29")]

    found, rows = with_store(store_url, scenario)
    assert found[code(1)].seq == 5
    assert [(row.seq, row.body, row.applied_at) for row in rows] == [(5, b'{"seq": 5}', T0)]


def test_a_newer_seq_replaces_the_row_and_an_equal_one_keeps_the_first(store_url: str) -> None:
    async def scenario(store: StateStore) -> list[AppliedRow]:
        await store.record([a_row(seq=5, message_id="first")])
        await store.record([a_row(seq=5, message_id="again")])
        await store.record([a_row(seq=6, message_id="newer", progress_count=3)])
        await store.record([a_row(seq=6, message_id="again")])
        return [row async for row in store.applied("H29")]

    rows = with_store(store_url, scenario)
    assert [(row.seq, row.message_id, row.progress_count) for row in rows] == [(6, "newer", 3)]


def test_a_batch_holding_one_dossier_twice_keeps_the_higher_seq_in_either_order(
    store_url: str,
) -> None:
    async def scenario(store: StateStore) -> Any:
        await store.record([a_row(1, seq=8), a_row(1, seq=7), a_row(2, seq=1), a_row(2, seq=2)])
        return await store.get([code(1), code(2)])

    found = with_store(store_url, scenario)
    assert (found[code(1)].seq, found[code(2)].seq) == (8, 2)


def test_a_batch_is_one_transaction_a_failing_row_leaves_none_of_the_batch(
    store_url: str,
) -> None:
    async def scenario(store: StateStore) -> Any:
        await store.record([a_row(1, seq=1)])
        broken = a_row(3, unit=None)  # violates NOT NULL, after the first rows went in
        with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
            await store.record([a_row(1, seq=2), a_row(2), broken])
        return await store.get([code(1), code(2), code(3)])

    found = with_store(store_url, scenario)
    assert {c: a.seq for c, a in found.items()} == {code(1): 1}


def test_two_writers_racing_on_the_same_dossiers_end_with_the_highest_seq_of_each(
    store_url: str,
) -> None:
    async def scenario() -> Any:
        async with open_store(store_url) as one, open_store(store_url) as other:
            seqs = list(range(1, 41))
            random.Random(7).shuffle(seqs)

            async def writer(store: StateStore, mine: list[int]) -> None:
                for seq in mine:
                    await store.record([a_row(n, seq=seq) for n in range(1, 6)])

            await asyncio.gather(writer(one, seqs[::2]), writer(other, seqs[1::2]))
            return await one.get([code(n) for n in range(1, 6)])

    found = asyncio.run(scenario())
    assert {applied.seq for applied in found.values()} == {40}
    assert len(found) == 5


def test_applied_yields_each_dossier_of_the_unit_applied_since_t_oldest_first_with_its_message(
    store_url: str,
) -> None:
    async def scenario(store: StateStore) -> tuple[list[AppliedRow], list[AppliedRow]]:
        store.page_size = 2  # several pages
        await store.record(
            [a_row(n, seq=n, applied_at=T0 + timedelta(minutes=10 - n)) for n in range(1, 8)]
            + [a_row(9, unit="H30", applied_at=T0 + timedelta(hours=1))]
        )
        since = T0 + timedelta(minutes=5)
        return (
            [row async for row in store.applied("H29", since)],
            [row async for row in store.applied("H29")],
        )

    recent, every = with_store(store_url, scenario)
    assert [row.dossier_code for row in recent] == [code(5), code(4), code(3), code(2), code(1)]
    assert len(every) == 7
    assert recent[0] == a_row(
        5,
        seq=5,
        applied_at=T0 + timedelta(minutes=5),
        message_id=recent[0].message_id,
    )
    assert recent[0].applied_at.tzinfo is UTC


def test_applied_at_and_since_are_instants_whatever_their_zone(store_url: str) -> None:
    vietnam = timezone(timedelta(hours=7))

    async def scenario(store: StateStore) -> list[AppliedRow]:
        await store.record([a_row(1, applied_at=datetime(2024, 1, 15, 15, 30, tzinfo=vietnam))])
        return [row async for row in store.applied("H29", since=T0)]

    rows = with_store(store_url, scenario)
    assert [row.applied_at for row in rows] == [T0]


def test_bytes_in_a_header_come_back_as_text(store_url: str) -> None:
    async def scenario(store: StateStore) -> list[AppliedRow]:
        await store.record([a_row(headers={"x-raw": b"abc", "x-list": [1, "two"]})])
        return [row async for row in store.applied("H29")]

    (row,) = with_store(store_url, scenario)
    assert row.headers == {"x-raw": "abc", "x-list": [1, "two"]}


def test_the_state_outlives_the_store_closing_and_opening_again(store_url: str) -> None:
    async def scenario() -> Any:
        async with open_store(store_url) as store:
            await store.record([a_row(seq=12)])
        async with open_store(store_url) as store:
            return await store.get([code(1)])

    assert asyncio.run(scenario())[code(1)].seq == 12


def test_a_doubt_never_goes_down_and_outlives_the_store_closing(store_url: str) -> None:
    async def scenario() -> dict[str, int]:
        async with open_store(store_url) as store:
            await store.doubt({code(1): 7, code(2): 3})
            await store.doubt({code(1): 5})
        async with open_store(store_url) as store:
            return await store.doubts()

    assert asyncio.run(scenario()) == {code(1): 7, code(2): 3}


def test_applying_a_seq_settles_the_doubt_up_to_it_and_no_further(store_url: str) -> None:
    async def scenario(store: StateStore) -> dict[str, int]:
        await store.doubt({code(1): 4, code(2): 9})
        await store.record([a_row(1, seq=4), a_row(2, seq=8)])
        return await store.doubts()

    assert with_store(store_url, scenario) == {code(2): 9}


def test_a_store_that_is_not_open_says_so(store_url: str) -> None:
    async def scenario() -> None:
        await open_store(store_url).get([code(1)])

    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(scenario())


def test_a_moment_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        a_row(applied_at=datetime(2024, 1, 15, 8, 30))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://db/state", "must start with sqlite:// or postgresql://"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
    ],
)
def test_open_store_refuses_a_url_it_cannot_keep_state_in(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        open_store(url)


def test_sqlite_urls_are_read_as_sqlalchemy_reads_them(tmp_path: Path) -> None:
    relative, absolute = open_store("sqlite:///state.db"), open_store(f"sqlite:///{tmp_path}/s.db")
    assert getattr(relative, "path", None) == "state.db"
    assert getattr(absolute, "path", None) == f"{tmp_path}/s.db"


def test_postgresql_a_lost_connection_fails_one_call_as_transient_and_the_next_reconnects(
    postgres_url: str,
) -> None:
    async def scenario() -> Any:
        async with open_store(postgres_url) as store:
            await store.record([a_row(seq=1)])
            application = postgres_url.rpartition("application_name=")[2]
            async with await psycopg.AsyncConnection.connect(
                POSTGRES_URL, autocommit=True
            ) as admin:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (application,),
                )
            with pytest.raises(StoreUnavailable):
                await store.get([code(1)])
            await store.record([a_row(seq=2)])
            return await store.get([code(1)])

    assert asyncio.run(scenario())[code(1)].seq == 2
