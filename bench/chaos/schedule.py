"""The campaign's faults, what each one does, and when: two lanes run side by side.

The broker lane holds the faults of the broker and of the processes (one at a time: a broker
restarting while the sync service is killed says little more than either alone); the portal
lane holds the simulator's faults. Each lane's faults are shuffled by the seed and given one
slot each, the fault starting at a random moment inside it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bench.chaos.pipeline import Pipeline

BROKER_LANE: Final = (
    "broker_restart", "connections_closed", "disk_alarm", "kill_sync", "kill_connector",
)  # fmt: skip
PORTAL_LANE: Final = ("portal_5xx", "portal_429", "portal_stall", "session_expiry", "portal_reset")
FAULTS: Final = (*BROKER_LANE, *PORTAL_LANE)

HOLD: Final = 3.0  # seconds a lasting fault lasts (broker down, disk alarm, 5xx share...)
SLOT: Final = 6.0  # the shortest time between the starts of two faults in a lane
DOWN: Final = 1.0  # seconds a killed process stays down before it is started again


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the flow starts
    name: str


@dataclass
class Schedule:
    lanes: list[list[Planned]]
    length: float  # seconds until the last slot ends
    done: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, object]:
        return {
            "length_s": round(self.length, 1),
            "lanes": [[planned.name for planned in lane] for lane in self.lanes],
        }


def lanes(
    faults: list[str], rounds: int, rng: random.Random, span: float | None = None
) -> Schedule:
    planned: list[list[Planned]] = []
    length = 0.0
    for lane in (BROKER_LANE, PORTAL_LANE):
        names = [name for name in lane if name in faults] * rounds
        if not names:
            continue
        rng.shuffle(names)
        slot = SLOT if span is None else max(SLOT, span / len(names))
        planned.append(
            [Planned(i * slot + rng.uniform(0, slot - SLOT / 2), n) for i, n in enumerate(names)]
        )
        length = max(length, len(names) * slot)
    return Schedule(planned, length)


async def inject(name: str, pipeline: Pipeline, rng: random.Random) -> None:
    """Inject one fault and, for a lasting one, end it."""
    broker, portal = pipeline.broker, pipeline.portal_faults
    if name == "broker_restart":
        await asyncio.to_thread(broker.stop_app)
        try:
            await asyncio.sleep(HOLD)
        finally:
            await asyncio.to_thread(broker.start_app)
    elif name == "connections_closed":
        await asyncio.to_thread(broker.close_connections)
    elif name == "disk_alarm":
        await asyncio.to_thread(broker.raise_disk_alarm)
        try:
            await asyncio.sleep(HOLD)
        finally:
            await asyncio.to_thread(broker.clear_disk_alarm)
    elif name in ("kill_sync", "kill_connector"):
        service = pipeline.sync if name == "kill_sync" else rng.choice(pipeline.connectors)
        await pipeline.restart(service, DOWN)
    elif name == "session_expiry":
        await asyncio.to_thread(portal.set, drop_sessions=True)
    elif name == "portal_stall":
        # Two calls held past the client's timeout, applied before the answer is held.
        await asyncio.to_thread(portal.set, stall_next=2, stall_seconds=pipeline.timeout + 1)
    else:
        setting = {"portal_5xx": "error_rate", "portal_429": "throttle_rate",
                   "portal_reset": "reset_rate"}[name]  # fmt: skip
        await asyncio.to_thread(portal.set, **{setting: 0.3, "retry_after": 1})
        try:
            await asyncio.sleep(HOLD)
        finally:
            await asyncio.to_thread(portal.set, **{setting: 0.0})
