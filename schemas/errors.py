"""The contract's one error: data that breaks it, with every problem spelled out.

Each problem names the field, the offending value (masked when it identifies a person) and
the rule it broke, so a connector team can fix their mapping from the message alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pydantic import BaseModel, ValidationError

from schemas.personal import kind_at


class Problem(NamedTuple):
    field: str
    value: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.value} — {self.rule}"


class ContractError(ValueError):
    """Input that does not satisfy the dossier contract."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(problem) for problem in self.problems))

    @classmethod
    def single(cls, field: str, value: object, rule: str) -> ContractError:
        return cls([Problem(field, repr(value), rule)])


def contract_error(error: ValidationError, roots: Iterable[type[BaseModel]]) -> ContractError:
    """A pydantic error re-told as problems, masking values of personal fields.

    `roots` are the models the error's locations start from (for a union, each member).
    """
    roots = tuple(roots)
    problems = []
    for detail in error.errors(include_url=False, include_input=True):
        loc = detail["loc"]
        problems.append(
            Problem(
                ".".join(str(step) for step in loc) or roots[0].__name__,
                shown(detail.get("input"), loc, roots),
                detail["msg"].removeprefix("Value error, "),
            )
        )
    return ContractError(problems)


def shown(value: object, loc: tuple[str | int, ...], roots: Iterable[type[BaseModel]]) -> str:
    """How a refused value may appear in a message: masked if personal, never a whole object."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    kind = next(filter(None, (kind_at(model, loc) for model in roots)), None)
    if kind is not None and isinstance(value, str):
        return repr(kind.mask(value))
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
