"""The operator store, on SQLite and on PostgreSQL: one row per dead-lettered event, its
history growing each time it comes back, and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus import headers
from bus.message import Message
from bus.ops import AuditEntry, DeadLetter, OpsStore
from bus.ops.store import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpsStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ops.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").replace("postgresql+psycopg://", "postgresql://")
    with OpsStore(url) as opened:
        try:
            yield opened
        finally:  # the PostgreSQL database lasts the module
            metadata.drop_all(opened.engine)


def dead(
    id: str, unit: str = "H29", *, at: str, reason: str = "portal_rejected", **extra: object
) -> DeadLetter:
    values = {
        headers.REASON: reason,
        headers.ERROR_CLASS: "PortalRejected",
        headers.ERROR: "NgayHenTra: cannot be before NgayTiepNhan",
        headers.ATTEMPT: 1,
        headers.FIRST_FAILURE: at,
        headers.LAST_FAILURE: at,
        headers.ORIGINAL_ROUTING_KEY: f"{unit}.dossier_upserted",
        headers.DOSSIER_CODE: f"000.00.01.{unit}-250701-0001",
        **extra,
    }
    message = Message(
        body=b'{"not": "an event", "cccd": "046051068303"}',
        exchange="",
        routing_key="portal.sync.dlq",
        headers=values,
        redelivered=False,
        delivery_tag=1,
        message_id=id,
        type="dossier_upserted",
        app_id=f"sample-{unit.lower()}",
        timestamp=1_751_330_000,
    )
    return DeadLetter.from_message(message)


def test_a_dead_letter_is_stored_once_and_read_back_as_it_came(store: OpsStore) -> None:
    letter = dead("e1", at="2025-07-01T01:00:00+00:00")
    store.put([letter, letter])
    store.put([letter])  # delivered again, as at-least-once can
    [back] = store.find(limit=None)
    assert back == letter
    assert back.last_failure == datetime(2025, 7, 1, 1, tzinfo=UTC)
    assert len(back.history) == 1


def test_one_that_comes_back_after_a_replay_waits_again_with_its_history_and_replay_count(
    store: OpsStore,
) -> None:
    store.put([dead("e1", at="2025-07-01T01:00:00+00:00")])
    assert store.mark_replayed("e1", 1, "an")
    assert store.get("e1").status == "replayed"  # type: ignore[union-attr]
    again = dead(
        "e1", at="2025-07-01T02:00:00+00:00", **{headers.REPLAYED_BY: "an", headers.REPLAYS: 1}
    )
    store.put([again])
    back = store.get("e1")
    assert back is not None
    assert (back.status, back.replays) == ("waiting", 1)
    assert [f.replayed_by for f in back.history] == [None, "an"]
    assert not store.mark_replayed("e1", 1, "an")  # came back before it was marked: stays waiting


def test_filters_counts_and_discards_see_units_reasons_and_statuses(store: OpsStore) -> None:
    store.put([
        dead("a", "H29", at="2025-07-01T01:00:00+00:00"),
        dead("b", "H29", at="2025-07-01T01:01:00+00:00", reason="signature"),
        dead("c", "G01", at="2025-07-01T01:02:00+00:00"),
    ])  # fmt: skip
    assert [d.id for d in store.find(limit=None)] == ["c", "b", "a"]  # latest first
    assert [d.id for d in store.find(units={"H29"}, limit=None)] == ["b", "a"]
    assert store.ids(reason="portal_rejected") == ["a", "c"]
    assert store.counts() == {("H29", "portal_rejected"): 1, ("H29", "signature"): 1,
                              ("G01", "portal_rejected"): 1}  # fmt: skip
    assert store.mark_discarded(["a", "c"], "an") == 2
    assert store.mark_discarded(["a"], "an") == 0
    assert store.counts(units={"G01"}) == {}
    assert store.units_of(["a", "zz"]) == {"a": "H29"}


def test_the_audit_log_keeps_who_when_what_and_how_many_latest_first(store: OpsStore) -> None:
    for minute, unit in enumerate(["H29", "G01"]):
        store.audit(
            AuditEntry(at=datetime(2025, 7, 1, 1, minute, tzinfo=UTC), actor="an", action="replay",
                       unit=unit, target="reason=signature", count=3 + minute, outcome="done")
        )  # fmt: skip
    entries = store.audit_entries()
    assert [(e.unit, e.count) for e in entries] == [("G01", 4), ("H29", 3)]
    assert entries[0].at == datetime(2025, 7, 1, 1, 1, tzinfo=UTC)
    assert [e.unit for e in store.audit_entries(units={"H29"})] == ["H29"]


def test_a_body_that_is_not_an_event_is_shown_as_text_with_long_numbers_masked() -> None:
    shown = dead("e1", at="2025-07-01T01:00:00+00:00").masked_body()
    assert "046051068303" not in shown["text"]
    assert shown["text"].startswith('{"not": "an event", "cccd": "04')
