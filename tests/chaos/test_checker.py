"""The campaign's checker on hand-made histories: each failure it names, and no other."""

from __future__ import annotations

from typing import Any

from bench.checker import Held, Version, check

STEP_1 = {"NguoiXuLy": "a", "TrangThai": 2}
STEP_2 = {"NguoiXuLy": "b", "TrangThai": 4}


def versions() -> list[Version]:
    """Four versions; the fourth adds a processing step and leaves the item as the third."""
    return [
        Version.of(1, {"TrangThai": 1}, []),
        Version.of(2, {"TrangThai": 2}, [STEP_1]),
        Version.of(3, {"TrangThai": 4}, [STEP_1]),
        Version.of(4, {"TrangThai": 4}, [STEP_1, STEP_2]),
    ]


def held(
    *statuses: int, changed: list[bool] | None = None, steps: list[dict[str, Any]] | None = None
) -> Held:
    flags = changed or [True] * len(statuses)
    history = [(flag, {"TrangThai": s}) for flag, s in zip(flags, statuses, strict=True)]
    return Held.of(
        {"TrangThai": statuses[-1]}, [STEP_1, STEP_2] if steps is None else steps, history
    )


def counts(verdict_held: Held) -> dict[str, int]:
    return check({"D1": versions()}, {"D1": verdict_held}).counts()


ZERO = {"lost": 0, "duplicate_applied": 0, "stale_applied": 0, "unexpected": 0,
        "dead_lettered_valid": 0}  # fmt: skip


def test_versions_applied_in_order_with_some_skipped_are_no_failure() -> None:
    assert counts(held(1, 4)) == ZERO


def test_the_same_snapshot_applied_again_is_an_identical_reapply_not_a_failure() -> None:
    verdict = check({"D1": versions()}, {"D1": held(1, 2, 2, 4, changed=[True, True, False, True])})
    assert verdict.counts() == ZERO
    assert verdict.reapplied_identical == 1


def test_a_dossier_absent_from_the_portal_is_lost() -> None:
    assert check({"D1": versions()}, {}).counts() == {**ZERO, "lost": 1}


def test_a_dossier_left_at_an_earlier_version_is_lost() -> None:
    assert counts(held(1, 2, steps=[STEP_1])) == {**ZERO, "lost": 1}


def test_a_dossier_missing_its_last_processing_step_is_lost() -> None:
    assert counts(held(1, 4, steps=[STEP_1])) == {**ZERO, "lost": 1}


def test_an_older_version_never_applied_arriving_after_a_newer_one_is_stale() -> None:
    assert counts(held(1, 4, 2, 4)) == {**ZERO, "stale_applied": 1}


def test_a_version_applied_again_after_the_portal_moved_past_it_is_a_duplicate() -> None:
    assert counts(held(1, 2, 4, 2, 4)) == {**ZERO, "duplicate_applied": 1}


def test_a_state_no_version_had_is_unexpected() -> None:
    assert counts(held(1, 9, 4)) == {**ZERO, "unexpected": 1}


def test_a_dossier_no_source_produced_is_unexpected() -> None:
    verdict = check({"D1": versions()}, {"D1": held(1, 4), "D2": held(1, 4)})
    assert verdict.counts() == {**ZERO, "unexpected": 1}
    assert verdict.examples == {"unexpected": ["D2"]}


def test_a_processing_step_no_version_had_is_unexpected() -> None:
    strange = {"NguoiXuLy": "z", "TrangThai": 9}
    assert counts(held(1, 4, steps=[STEP_1, STEP_2, strange])) == {**ZERO, "unexpected": 1}


def test_dead_letters_given_are_counted_as_valid_events_dead_lettered() -> None:
    verdict = check({"D1": versions()}, {"D1": held(4)}, dead_lettered=3)
    assert verdict.counts() == {**ZERO, "dead_lettered_valid": 3}
