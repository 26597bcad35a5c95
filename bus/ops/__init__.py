"""Operator tools: what failed, why, and putting it right.

    portal.sync.dlq ──collect──▶ OpsStore (dead letters, audit log) ──▶ bus dlq / the console
                                      │ replay: the original message, back to portal.sync
                                      └ discard: kept, marked, out of the way
    dossier.audit (stream) ──bus replay --unit U --since T──▶ portal.sync

- `Operator` (operator.py): who acts, and on which units; a provincial operator sees and acts
  only on their own units, which `DeadLetters` enforces, not the views.
- `DeadLetter` (deadletter.py): one dead-lettered event as operators see it, its body with
  personal data masked.
- `OpsStore` (store.py): dead letters and the audit log in SQLite or PostgreSQL.
- `DeadLetters` (deadletters.py): collect, list, show, replay, discard; every action audited.
- `history.py`: re-send a unit's events from the audit stream since a moment.
- `status.py`: queues, dead letters and connector heartbeats, for `bus status`.
"""

from bus.ops.audit import AuditEntry
from bus.ops.deadletter import DeadLetter, Failure
from bus.ops.deadletters import DeadLetters
from bus.ops.operator import Operator
from bus.ops.store import OpsStore

__all__ = ["AuditEntry", "DeadLetter", "DeadLetters", "Failure", "Operator", "OpsStore"]
