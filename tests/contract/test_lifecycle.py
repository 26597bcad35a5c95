"""Status moves are judged usual, unusual but accepted, or impossible (DOMAIN.md's table)."""

import pytest

from schemas import DossierStatus as S
from schemas import Verdict, verdict


@pytest.mark.parametrize(
    ("previous", "new"),
    [(1, 2), (1, 3), (2, 4), (4, 5), (4, 6), (4, 8), (4, 9), (5, 4), (6, 4), (6, 9), (9, 10)],
)
def test_the_usual_moves_are_usual(previous: int, new: int) -> None:
    assert verdict(S(previous), S(new)) is Verdict.USUAL


@pytest.mark.parametrize("previous", [1, 2, 4, 5, 6])
def test_an_open_or_paused_dossier_may_be_withdrawn(previous: int) -> None:
    assert verdict(S(previous), S.WITHDRAWN) is Verdict.USUAL


@pytest.mark.parametrize(("previous", "new"), [(1, 4), (2, 9), (4, 10), (9, 4)])
def test_skipping_or_reopening_steps_is_unusual_but_accepted(previous: int, new: int) -> None:
    assert verdict(S(previous), S(new)) is Verdict.UNUSUAL


@pytest.mark.parametrize(("previous", "new"), [(3, 2), (7, 4), (8, 9), (10, 9), (4, 1)])
def test_leaving_a_final_status_or_going_back_to_new_is_impossible(previous: int, new: int) -> None:
    assert verdict(S(previous), S(new)) is Verdict.IMPOSSIBLE


def test_a_first_sighting_and_a_repeated_status_are_usual() -> None:
    assert verdict(None, S.RETURNED) is Verdict.USUAL
    assert verdict(S.PROCESSING, S.PROCESSING) is Verdict.USUAL
