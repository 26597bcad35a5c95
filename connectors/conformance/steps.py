"""The six steps of a check: the mapping's on the records alone, then the pipeline's on
the scratch environment, in order (`Pipeline`), each starting from the dossiers the one
before left."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from bus.metrics import MESSAGES
from bus.publisher import event_message
from bus.topology import is_sync_queue
from connectors.config import ConnectorConfig
from connectors.conformance.errors import Stopped
from connectors.conformance.report import Step
from connectors.conformance.scratch import Scratch
from connectors.mapping import MappingError, RecordMapping
from connectors.source import Accepted, Record
from schemas import Event

TIMEOUT: Final = 60.0  # seconds a step waits for the pipeline to settle
SEQ_BUMP: Final = 1000  # a new version of a record: its seq this much higher
OUT_OF_ORDER: Final = 5  # dossiers sent an older version after the newer one
SHOWN: Final = 5  # refused records, or differences, listed under a step
UNSETTLED: Final = frozenset({"retried", "failed"})  # outcomes after which a message comes back
STEPS: Final = (
    "records map",
    "delivered",
    "duplicates",
    "out-of-order",
    "bad records",
    "broker outage",
)
# Dossier times, in the order a broken one is tried: the first the config maps is used.
_TIMES: Final = ("submitted_at", "received_at", "due_at", "processed_at", "returned_at")


def map_records(
    config: ConnectorConfig, records: list[Record]
) -> tuple[list[tuple[Record, Event]], Step]:
    """Step 1: each record that maps with its event, and the line saying which do not, and
    why: by reason, since one forgotten status code refuses many records alike.

    A single refused record fails the step: live, it would only go to the rejects, but a
    mapping that refuses records of the real source is not ready to go live (`bus connector
    validate` fails on it too). The steps after it still run on the records that map."""
    mapping = RecordMapping(config)
    mapped: list[tuple[Record, Event]] = []
    refused: dict[str, list[str]] = {}
    for index, record in enumerate(records):
        try:
            mapped.append((record, mapping.event(record, None)))
        except MappingError as error:
            code = mapping.dossier_code(record) or f"record #{index + 1}"
            refused.setdefault(str(error), []).append(code)
    count = sum(len(codes) for codes in refused.values())
    details = [
        f"{len(codes)} × {reason} (e.g. {', '.join(codes[:3])})"
        for reason, codes in sorted(refused.items(), key=lambda item: -len(item[1]))[:SHOWN]
    ]
    if len(refused) > SHOWN:
        details.append(f"... and {len(refused) - SHOWN} other reasons")
    if not mapped:
        reason = f"none of {len(records)} records maps"
        return mapped, Step("FAIL", "records map", reason, tuple(details))
    if refused:
        reason = (
            f"{count} of {len(records)} refused, see reasons: fix [mapping] (live, they would go"
            f" to the rejects); the steps below run on the {len(mapped)} that map"
        )
        return mapped, Step("FAIL", "records map", reason, tuple(details))
    return mapped, Step("PASS", "records map", f"{len(records)} of {len(records)} records map")


# ---- the steps that need the pipeline ------------------------------------------------------


def _settled() -> Counter[str]:
    """Messages of portal.sync the sync service finished with so far, by outcome: from its
    metrics, which live in this process since the service does."""
    found: Counter[str] = Counter()
    for family in MESSAGES.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and is_sync_queue(sample.labels.get("queue", "")):
                found[sample.labels["outcome"]] += int(sample.value)
    return found


def _outcomes(counts: Counter[str]) -> str:
    return ", ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items())) or "none"


class Pipeline:
    """The pipeline steps, in order: each starts from the dossiers the previous one left."""

    def __init__(self, env: Scratch) -> None:
        self.env = env
        self.portal = env.portal
        self.connector = env.connector
        self.mapping = env.connector.mapping
        self.config = env.connector.config
        self.latest: dict[str, Record] = {}  # the newest version of each dossier sent
        self.expected: dict[str, Event] = {}  # its event: what the simulator must hold
        self._versions = itertools.count(1)

    # ---- the steps

    async def delivered(self, mapped: list[tuple[Record, Event]]) -> Step:
        for record, event in mapped:  # a sample may hold two versions of a dossier
            old = self.expected.get(str(event.dossier_code))
            if old is None or event.seq > old.seq:
                self._sent(record, event)
        before = _settled()
        accepted = self._ingest([record for record, _ in mapped], "check")
        if problems := await self._arrived(sorted(self.expected)):
            return _failed("delivered", problems, _settled() - before)
        # Every message ends here, so that the next step counts only its own.
        await self._settle(before, accepted.committed)
        return Step(
            "PASS",
            "delivered",
            f"{len(self.expected)} dossiers on the portal simulator as mapped"
            f" ({accepted.committed} events relayed)",
        )

    async def duplicates(self, records: list[Record]) -> Step:
        codes = sorted(self.expected)
        skipped = self.connector.skipped
        again = self._ingest(records, "check-again")
        skipped = self.connector.skipped - skipped
        # And past the outbox's guard, as a re-publication after a lost confirm comes.
        before = _settled()
        await self._publish(list(self.expected.values()))
        done = await self._settle(before, len(codes))
        problems = [] if done is not None else [f"copies not all handled in {TIMEOUT:.0f} s"]
        if skipped != len(records) or again.committed:
            problems.append(
                f"{again.committed} of {len(records)} records read again went to the outbox"
                " again instead of being skipped"
            )
        problems += [f"{code}: applied twice" for code in await self.portal.applied_twice(codes)]
        problems += await self._differences(codes, {})
        if done is None or problems:
            return _failed("duplicates", problems, done)
        return Step(
            "PASS",
            "duplicates",
            f"{skipped} records read again were skipped; {len(codes)} events published again"
            f" were dropped ({_outcomes(done)}); none applied twice",
        )

    async def out_of_order(self) -> Step:
        newer = [event for event in self.expected.values() if event.seq >= 1][:OUT_OF_ORDER]
        if not newer:
            return Step("SKIP", "out-of-order", "no dossier has a version before the one sent")
        before = _settled()
        await self._publish([_older(event) for event in newer])
        done = await self._settle(before, len(newer))
        problems = [] if done is not None else [f"older versions not handled in {TIMEOUT:.0f} s"]
        problems += await self._differences([str(event.dossier_code) for event in newer], {})
        if done is None or problems:
            return _failed("out-of-order", problems, done)
        return Step(
            "PASS",
            "out-of-order",
            f"{len(newer)} older versions published after the newer ones were dropped"
            f" ({_outcomes(done)}); the newer states stayed",
        )

    async def bad_records(self) -> Step:
        cases = self._broken()
        valid = self._newer(self._base(3))
        event = self.mapping.event(valid, None)
        due = str(event.dossier_code)
        touched = sorted({self.mapping.dossier_code(r) for _, r in cases} - {""} | {due})
        held = await self.portal.records()
        updates = {code: int(held[code]["version"]) for code in touched if code in held}
        rejects, published = self.connector.outbox.reject_count(), self.env.relay.published
        accepted = self._ingest([record for _, record in cases] + [valid], "check-bad")
        self._sent(valid, event)
        problems = await self._arrived([due], {due: updates.get(due, 0)})
        now = await self.portal.records()
        for code in touched:
            if code != due and now.get(code) != held.get(code):
                problems.append(f"{code}: changed on the portal simulator by a broken record")
        shown = []
        for index, (label, _) in enumerate(cases):
            if index in accepted.refused:
                shown.append(f"{label}: rejected, {accepted.refused[index]}")
            else:
                problems.append(f"{label}: accepted instead of rejected")
        if len(cases) in accepted.refused:
            problems.append(f"the valid record was refused: {accepted.refused[len(cases)]}")
        if (stored := self.connector.outbox.reject_count() - rejects) != len(cases):
            problems.append(f"{stored} records in the reject store, {len(cases)} due")
        if (sent := self.env.relay.published - published) != 1:
            problems.append(f"{sent} events published, only the valid record's due")
        if (count := int(now.get(due, {}).get("version", 0)) - updates.get(due, 0)) > 1:
            problems.append(f"{due}: applied {count} times")
        if problems:
            return _failed("bad records", problems + shown, None)
        reason = (
            f"{len(cases)} broken records in the reject store with a reason, none published;"
            " the valid one beside them delivered"
        )
        return Step("PASS", "bad records", reason, tuple(shown))

    async def broker_outage(self) -> Step:
        news = [self._newer(record) for record in self.latest.values()]
        events = [self.mapping.event(record, None) for record in news]
        codes = sorted(self.expected)
        updates = await self.portal.updates(codes)
        # Named first, so that the cut comes right as the relay takes the first half.
        names = await self.env.management.connections(self.env.vhost)
        started = time.monotonic()
        half = (len(news) + 1) // 2
        self._ingest(news[:half], "check-outage")
        waiting = self.connector.outbox.size()
        await asyncio.gather(*(self.env.management.close_connection(n) for n in names))
        self._ingest(news[half:], "check-outage")  # while the connections come back
        for record, event in zip(news, events, strict=True):
            self._sent(record, event)
        problems = [] if names else ["no connection of the scratch virtual host to close"]

        async def drained() -> bool:
            return self.connector.outbox.size() == 0

        if not await self._until(drained):
            problems.append(f"{self.connector.outbox.size()} events left in the outbox")
        problems += await self._arrived(codes, updates)
        applied = await self.portal.updates(codes)
        for code in codes:
            if (count := applied.get(code, 0) - updates.get(code, 0)) > 1:
                problems.append(f"{code}: applied {count} times")
        if problems:
            return _failed("broker outage", problems, None)
        return Step(
            "PASS",
            "broker outage",
            f"{len(names)} connections force-closed with {waiting} events in the outbox; all"
            f" {len(news)} new versions arrived in {time.monotonic() - started:.1f} s, none"
            " applied twice, outbox empty",
        )

    # ---- the connector's side

    def _ingest(self, records: Sequence[Record], ref: str) -> Accepted:
        accepted = self.connector.ingest(records, ref)
        self.env.relay.wake()
        return accepted

    async def _publish(self, events: list[Event]) -> None:
        """Straight to the broker, signed as the connector, past its outbox."""
        signer = self.connector.signer
        confirms = [await self.env.publisher.send(event_message(e, signer)) for e in events]
        await asyncio.gather(*confirms)

    def _sent(self, record: Record, event: Event) -> None:
        self.latest[str(event.dossier_code)] = record
        self.expected[str(event.dossier_code)] = event

    def _base(self, index: int) -> Record:
        """A record to make another one from (a sample may hold fewer dossiers than asked)."""
        records = list(self.latest.values())
        return records[index % len(records)]

    def _newer(self, record: Record) -> dict[str, Any]:
        """The next version of a record: its seq field moved on, and its note (when mapped)
        changed, so that the simulator shows which version it holds."""
        rule = self.config.connector.seq
        changed = dict(record)
        value = record.get(rule.field)
        if rule.from_ == "timestamp":
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            moment += timedelta(seconds=1)
            changed[rule.field] = moment if isinstance(value, datetime) else moment.isoformat(" ")
        else:
            changed[rule.field] = int(str(value)) + SEQ_BUMP
        if note := self.config.mapping.fields.get("note"):
            changed[note] = f"conformance check, version {next(self._versions)}"
        return changed

    def _broken(self) -> list[tuple[str, dict[str, Any]]]:
        """Newer versions broken on purpose, each as the config allows: a status code with no
        national code, a time that is no time, no dossier code."""
        fields = self.config.mapping.fields
        cases = []
        if "status" in fields:
            broken = {**self._newer(self._base(0)), fields["status"]: "CONFORMANCE_UNKNOWN"}
            cases.append(("an unknown local status code", broken))
        if time_field := next((fields[path] for path in _TIMES if path in fields), None):
            broken = {**self._newer(self._base(1)), time_field: "not a time"}
            cases.append(("a time that is not a time", broken))
        broken = self._newer(self._base(2))
        broken.pop(self.mapping.code_field, None)
        cases.append(("a missing dossier code", broken))
        return cases

    # ---- waiting for the pipeline

    async def _until(self, done: Callable[[], Awaitable[bool]]) -> bool:
        """Wait for `done` up to TIMEOUT; False when it did not come."""
        deadline = time.monotonic() + TIMEOUT
        while not await done():
            for task in self.env.tasks:
                if task.done():
                    error = None if task.cancelled() else task.exception()
                    raise Stopped(f"{task.get_name()} stopped: {error or 'interrupted'}")
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def _settle(self, before: Counter[str], count: int) -> Counter[str] | None:
        """Wait until `count` more messages than at `before` have ended; the outcomes since
        (None: not within TIMEOUT)."""

        async def ended() -> bool:
            done = _settled() - before
            return sum(n for outcome, n in done.items() if outcome not in UNSETTLED) >= count

        return _settled() - before if await self._until(ended) else None

    async def _arrived(self, codes: list[str], after: dict[str, int] | None = None) -> list[str]:
        """Wait until the simulator holds these dossiers as expected, each of `after` with
        more updates applied than it says (a new version may look like the one before it);
        the differences left."""
        problems: list[str] = []

        async def same() -> bool:
            nonlocal problems
            problems = await self._differences(codes, after or {})
            return not problems

        await self._until(same)
        return problems

    async def _differences(self, codes: list[str], after: dict[str, int]) -> list[str]:
        return await self.portal.differences(self.expected, codes, after)


def _failed(name: str, problems: list[str], outcomes: Counter[str] | None) -> Step:
    """A failed step: its first problems, and what the sync service did meanwhile."""
    details = problems[:SHOWN]
    if len(problems) > SHOWN:
        details.append(f"... and {len(problems) - SHOWN} more")
    if outcomes is not None:
        details.append(f"sync service: {_outcomes(outcomes)}")
    return Step("FAIL", name, f"{len(problems)} problem{'s' * (len(problems) > 1)}", tuple(details))


def _older(event: Event) -> Event:
    """A version of the dossier before `event` (seq - 1), visibly different: what a slow
    path or an old re-send brings after the newer one."""
    dossier = event.payload.dossier.model_copy(update={"note": "conformance check: older"})
    payload = event.payload.model_copy(update={"dossier": dossier})
    update = {"event_id": uuid.uuid4(), "seq": event.seq - 1, "payload": payload}
    return event.model_copy(update=update)
