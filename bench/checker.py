"""The campaign's judge, in the manner of Jepsen's queue checker: what the sources wrote (the
truth) against what the portal holds and the order it applied it in. Pure functions.

The truth is each dossier's versions in seq order, each rendered as the portal stores it (the
DongBoHoSoMC item, the CapNhatTienDoHoSoMC steps). A polling connector may see only a
dossier's latest row, so versions may be skipped: skipping is no fault, going back is.

The portal's history of a dossier is read in the order applied; each DongBoHoSoMC row is
matched with the versions that render to its item (several versions can render alike: one that
only added a processing step changes the steps, not the item). Walking the rows, the dossier's
*position* is the version last applied; a row is, precisely:

- a re-apply when it matches the position's version: the same snapshot sent again after a lost
  answer or a crash before the ack, or a later version whose item is the same (it changed
  only the processing steps, sent as their own calls). The portal's upsert is idempotent
  (`changed` is false), so nothing is visible; counted apart as `reapplied_identical`, not as
  a failure;
- progress when it matches a later version: the position moves to the earliest such;
- `duplicate_applied` when it matches only earlier versions and one of them was applied before:
  the portal went back to a snapshot it had already held, visibly, as an update;
- `stale_applied` when it matches only earlier versions none of which was applied: an older
  snapshot overwrote a newer one;
- `unexpected` when it matches no version at all (no source ever had that state), and so is a
  dossier no source produced, or a final processing step no version had.

`lost` counts dossiers whose final version the portal does not hold: absent, or left at an
earlier version, or missing a final processing step. `dead_lettered_valid` is given by the
caller: the campaign's sources write only valid events, so every dead letter is one.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

Item = Mapping[str, Any]
Key = bytes  # an item's identity, see `key`


def key(item: Item) -> Key:
    """An item's identity: a digest of its JSON with sorted keys. A soak's truth holds
    millions of versions; 16 bytes each, not the item, keeps it in memory."""
    return hashlib.blake2b(orjson.dumps(item, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a dossier at its source, as the portal would hold it: the identities
    of its DongBoHoSoMC item and of its CapNhatTienDoHoSoMC steps."""

    seq: int
    item: Key
    steps: tuple[Key, ...]

    @classmethod
    def of(cls, seq: int, item: Item, steps: Iterable[Item]) -> Version:
        return cls(seq, key(item), tuple(map(key, steps)))


@dataclass(frozen=True, slots=True)
class Held:
    """What the portal holds of one dossier: its item, its steps, and its DongBoHoSoMC
    history in the order applied, as (changed, item) pairs; identities all."""

    item: Key
    steps: tuple[Key, ...]
    history: tuple[tuple[bool, Key], ...]

    @classmethod
    def of(cls, item: Item, steps: Iterable[Item], history: Iterable[tuple[bool, Item]]) -> Held:
        return cls(
            key(item), tuple(map(key, steps)), tuple((changed, key(i)) for changed, i in history)
        )

    def holds(self, version: Version) -> bool:
        """The portal holds `version` as it is: its item and exactly its steps."""
        return self.item == version.item and self.steps == version.steps


@dataclass
class Verdict:
    lost: int = 0
    duplicate_applied: int = 0
    stale_applied: int = 0
    unexpected: int = 0
    dead_lettered_valid: int = 0
    reapplied_identical: int = 0
    # Up to a few dossier codes per kind of failure, to start looking from.
    examples: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "lost": self.lost,
            "duplicate_applied": self.duplicate_applied,
            "stale_applied": self.stale_applied,
            "unexpected": self.unexpected,
            "dead_lettered_valid": self.dead_lettered_valid,
        }

    def failed(self, kind: str, code: str, count: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + count)
        shown = self.examples.setdefault(kind, [])
        if len(shown) < 5 and code not in shown:
            shown.append(code)


def check(
    truth: Mapping[str, Sequence[Version]], held: Mapping[str, Held], dead_lettered: int = 0
) -> Verdict:
    verdict = Verdict(dead_lettered_valid=dead_lettered)
    for code in sorted(held.keys() - truth.keys()):
        verdict.failed("unexpected", code)
    for code, versions in truth.items():
        record = held.get(code)
        if record is None:
            verdict.failed("lost", code)
            continue
        check_dossier(code, versions, record, verdict)
    return verdict


def check_dossier(code: str, versions: Sequence[Version], record: Held, verdict: Verdict) -> None:
    seqs: dict[Key, list[int]] = {}
    for version in versions:
        seqs.setdefault(version.item, []).append(version.seq)
    position: int | None = None
    applied: set[int] = set()
    for changed, item in record.history:
        matches = seqs.get(item)
        if matches is None:
            verdict.failed("unexpected", code)
            continue
        if position in matches:
            verdict.reapplied_identical += not changed
            continue
        later = [seq for seq in matches if position is None or seq > position]
        if later:
            position = min(later)
            applied.add(position)
        elif applied & set(matches):
            verdict.failed("duplicate_applied", code)
        else:
            verdict.failed("stale_applied", code)
    final = versions[-1]
    known_steps = {step for version in versions for step in version.steps}
    extra = [step for step in record.steps if step not in known_steps]
    if extra:
        verdict.failed("unexpected", code, len(extra))
    if record.item in seqs and (
        record.item != final.item or Counter(final.steps) - Counter(record.steps)
    ):
        verdict.failed("lost", code)
