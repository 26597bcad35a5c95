"""Which status moves are usual, which are odd but accepted, and which cannot happen.

Vendors send updates out of order, so a verdict judges two statuses in `seq` order, never in
arrival order (the sync service's version guard sees to that).
"""

from __future__ import annotations

from enum import Enum

from schemas.codes import DossierStatus as S
from schemas.codes import StatusKind


class Verdict(Enum):
    USUAL = "usual"
    UNUSUAL = "unusual"  # accepted, worth a log line: e.g. a vendor that skips "received"
    IMPOSSIBLE = "impossible"  # a vendor bug: leaving a final status, or going back to "new"


USUAL_MOVES: dict[S, frozenset[S]] = {
    S.SUBMITTED: frozenset({S.RECEIVED, S.REFUSED}),
    S.RECEIVED: frozenset({S.PROCESSING}),
    S.PROCESSING: frozenset({S.SUPPLEMENT_REQUESTED, S.PAYMENT_REQUESTED, S.STOPPED, S.DECIDED}),
    S.SUPPLEMENT_REQUESTED: frozenset({S.PROCESSING}),
    S.PAYMENT_REQUESTED: frozenset({S.PROCESSING, S.DECIDED}),
    S.DECIDED: frozenset({S.RETURNED}),
}


def verdict(previous: S | None, new: S) -> Verdict:
    """Judge the move from `previous` (None: first sight of the dossier) to `new`."""
    if previous is None or previous is new:
        return Verdict.USUAL
    if previous.kind is StatusKind.FINAL or new is S.SUBMITTED:
        return Verdict.IMPOSSIBLE
    if new in USUAL_MOVES.get(previous, frozenset()):
        return Verdict.USUAL
    if new is S.WITHDRAWN and previous.kind in (StatusKind.OPEN, StatusKind.PAUSED):
        return Verdict.USUAL
    return Verdict.UNUSUAL
