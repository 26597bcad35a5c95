"""Who acts: an operator, and the units they answer for.

A national operator (`units` None) sees every unit; a provincial or ministry operator sees
and acts only on their own units (`H29`, `G01`). The check is made where the data is
(`DeadLetters`), so no view can forget it.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Operator:
    name: str
    units: frozenset[str] | None = None  # None: every unit

    @classmethod
    def national(cls, name: str) -> Operator:
        return cls(name, None)

    @classmethod
    def of_units(cls, name: str, units: Iterable[str]) -> Operator:
        return cls(name, frozenset(units))

    @classmethod
    def from_login(cls) -> Operator:
        """The person at this terminal, as a national operator: what the CLI acts as."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container without a passwd entry)
            name = "unknown"
        return cls.national(name)

    @property
    def is_national(self) -> bool:
        return self.units is None

    def may_act_on(self, unit: str) -> bool:
        return self.units is None or unit in self.units
