"""The connector's outbox: events, cursor, versions sent and rejects move together."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connectors.outbox import Outbox, Pending, Reject, Sent


def _event(code: str, seq: int) -> Pending:
    return Pending(0, f"id-{code}-{seq}", "dossier_upserted", code, seq, 1_750_000_000, b"{}")


def test_events_rejects_and_cursor_are_committed_together(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    reject = Reject("page 1#3", "H29.1", "trang_thai: no national code", {"chu_ho_so": "N. V."})
    outbox.commit([(_event("H29.1", 1), 2), (_event("H29.2", 4), 4)], [reject], "2025-07-01")
    assert outbox.size() == 2
    assert outbox.cursor() == "2025-07-01"
    assert outbox.sent(["H29.1", "H29.2", "H29.3"]) == {
        "H29.1": Sent(1, 2),
        "H29.2": Sent(4, 4),
    }
    assert [r.reason for r in outbox.rejects()] == ["trang_thai: no national code"]


def test_a_record_refused_again_as_it_was_for_the_same_reason_is_not_stored_twice(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path)
    refused = Reject("page 1#4", "H29.1", "trang_thai: no national code", {"trang_thai": "X"})
    assert outbox.commit([], [refused], None) == [refused]
    again = Reject("page 2#1", "H29.1", "trang_thai: no national code", {"trang_thai": "X"})
    changed = Reject("page 3#1", "H29.1", "trang_thai: no national code", {"trang_thai": "Y"})
    assert outbox.commit([], [again, changed], None) == [changed]
    assert [r.ref for r in outbox.rejects()] == ["page 3#1", "page 1#4"]


def test_a_page_or_file_refused_whole_is_stored_each_time(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    page = Reject("page 7", "", "not JSON", {})
    outbox.commit([], [page], None)
    outbox.commit([], [page], None)
    assert outbox.reject_count() == 2


def test_a_failed_commit_leaves_neither_events_nor_cursor(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.commit([(_event("H29.1", 1), 1)], [], "c1")
    broken = Reject("x", "H29.9", "r", {"unserializable": object()})
    with pytest.raises(TypeError):
        outbox.commit([(_event("H29.2", 1), 1)], [broken], "c2")
    assert outbox.cursor() == "c1"
    assert [row.dossier_code for row in outbox.pending(10)] == ["H29.1"]


def test_the_version_sent_never_goes_back(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.commit([(_event("H29.1", 5), 4)], [], None)
    outbox.commit([(_event("H29.1", 3), 2)], [], None)
    assert outbox.sent(["H29.1"])["H29.1"].seq == 5


def test_confirmed_rows_leave_the_outbox_up_to_the_last_confirmed_one(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.commit([(_event("H29.1", 1), 1), (_event("H29.1", 2), 2)], [], None)
    first, second = outbox.pending(10)
    outbox.delete_through(first.id)
    assert [row.seq for row in outbox.pending(10)] == [second.seq]


def test_a_reopened_outbox_has_what_was_committed_before_a_crash(tmp_path: Path) -> None:
    Outbox(tmp_path).commit([(_event("H29.1", 1), 1)], [], "c1")  # never closed, as on kill -9
    reopened = Outbox(tmp_path)
    assert reopened.cursor() == "c1"
    assert reopened.size() == 1


def test_the_outbox_file_is_in_wal_mode(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    db = sqlite3.connect(outbox.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
