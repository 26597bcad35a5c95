"""The report of a check: one line per step, PASS, FAIL or SKIP, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.personal import mask_text

Outcome = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    name: str
    reason: str
    details: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """For people: a reason may quote what the source answered, so it is masked."""
        lines = [f"{self.outcome} {self.name}: {self.reason}", *(f"    {d}" for d in self.details)]
        return [mask_text(line) for line in lines]


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(step.outcome == "FAIL" for step in self.steps)

    @property
    def passed(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        if self.failed:
            return f"conformance: FAIL ({self.failed} step{'s' * (self.failed > 1)})"
        if not any(step.outcome == "PASS" for step in self.steps):
            return "conformance: NOT RUN (no records to run on, see above)"
        return "conformance: PASS"
