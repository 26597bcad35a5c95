"""A dossier as the sample local system keeps it: changed step by step by its officers, and
publishing one contract event per step with the whole dossier as it stands after it."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from connectors.sample import people
from connectors.sample.procedures import CATALOGUE, WEIGHTS, Procedure
from schemas import (
    Dossier,
    DossierUpserted,
    Event,
    PaymentRecorded,
    Progress,
    ProgressRecorded,
    ResultReturned,
    Source,
    StatusChanged,
    SupplementRequested,
)
from schemas import DossierStatus as S

MINUTE: Final = 60.0

# The six event models; `Event` is their union, annotated for pydantic.
EventModel = (
    DossierUpserted
    | StatusChanged
    | ProgressRecorded
    | PaymentRecorded
    | SupplementRequested
    | ResultReturned
)


class Staff:
    """The agency's officers: who receives and returns, who processes, who decides."""

    def __init__(self, rng: random.Random) -> None:
        self.desk = [people.person_name(rng) for _ in range(3)]
        self.specialists = [people.person_name(rng) for _ in range(5)]
        self.leaders = [people.person_name(rng) for _ in range(2)]


class LocalDossier:
    """One dossier in the local system, changed step by step, with the events it published."""

    def __init__(
        self, rng: random.Random, source: Source, staff: Staff, code: str, now: datetime
    ) -> None:
        self.rng = rng
        self.source = source
        self.staff = staff
        self.code = code
        self.now = now
        self.procedure: Procedure = rng.choices(CATALOGUE, WEIGHTS)[0]
        self.fields: dict[str, Any] = {}
        self.events: list[Event] = []
        self._last_step = now

    @property
    def status(self) -> S:
        status: S = self.fields["status"]
        return status

    def chance(self, share: float) -> bool:
        return self.rng.random() < share

    def wait(self, mean: float) -> None:
        """Let time pass: about `mean` seconds, at least a minute, so that steps are apart."""
        self.now += timedelta(seconds=max(MINUTE, round(self.rng.expovariate(1 / mean))))

    def step(
        self,
        kind: Callable[..., EventModel],
        content: str | None,
        *,
        by: str = "desk",
        payload: dict[str, Any] | None = None,
        **changes: Any,
    ) -> Dossier:
        """Change the dossier, append the officer's progress step (unless `content` is None:
        the applicant acted alone), and publish the event `kind` with the new snapshot; a
        `progress_recorded` event's step is the one appended."""
        self.fields.update(changes)
        if content is not None:
            handler, title, department = self._officer(by)
            step = Progress(
                handler=handler,
                title=title,
                handled_at=self.now,
                department=department,
                content=content,
                status=self.status,
                started_at=self._last_step,
                due_at=self.fields.get("due_at"),
            )
            self.fields["progress"] = (*self.fields.get("progress", ()), step)
            if kind is ProgressRecorded:
                payload = {**(payload or {}), "step": step}
        self._last_step = self.now
        dossier = Dossier(**self.fields)
        self.events.append(
            kind(
                event_id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
                occurred_at=self.now,
                source=self.source,
                dossier_code=self.code,
                seq=len(self.events) + 1,
                payload={"dossier": dossier, **(payload or {})},
            )
        )
        return dossier

    def move(self, status: S, content: str, *, by: str = "desk", **changes: Any) -> None:
        """A step that only moves the status (and what goes with it)."""
        payload = {"previous_status": self.status}
        self.step(StatusChanged, content, by=by, payload=payload, status=status, **changes)

    def _officer(self, role: str) -> tuple[str, str, str]:
        unit = self.fields["handling_unit"]
        if role == "desk":
            return self.rng.choice(self.staff.desk), "Công chức Bộ phận Một cửa", "Bộ phận Một cửa"
        if role == "leader":
            return self.rng.choice(self.staff.leaders), "Lãnh đạo", unit
        return self.rng.choice(self.staff.specialists), "Chuyên viên", unit
