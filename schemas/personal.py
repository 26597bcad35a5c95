"""Personal data: which fields identify a person, and the one way to mask them.

Fields are marked where they are declared (`Annotated[str, Personal.ID_NUMBER]`), so a new
field is masked everywhere (logs, dead-letter views, error messages) the moment it is marked.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel


class Personal(Enum):
    """A kind of personal data; used as field metadata and as the masking rule."""

    NAME = "name"
    ID_NUMBER = "id_number"
    PHONE = "phone"
    EMAIL = "email"
    TEXT = "text"  # free text about a person: addresses, "other information"

    def mask(self, value: str) -> str:
        if self is Personal.ID_NUMBER:
            return _keep_ends(value, 4, 2)
        if self is Personal.PHONE:
            return _keep_ends(value, 3, 2)
        if self is Personal.EMAIL:
            local, at, domain = value.partition("@")
            return f"{local[:1]}***{at}{domain}" if at else _keep_ends(value, 1, 0)
        if self is Personal.NAME:
            return " ".join(f"{word[:1]}." for word in value.split())
        return f"<{len(value)} characters>"


def _keep_ends(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def masked(model: BaseModel) -> dict[str, Any]:
    """The model as JSON-ready data with every personal field masked, for logs and views."""
    data = model.model_dump(mode="json")
    _mask_in_place(type(model), data)
    return data


def _mask_in_place(model_type: type[BaseModel], data: dict[str, Any]) -> None:
    for name, field in model_type.model_fields.items():
        value = data.get(name)
        if value is None:
            continue
        kind = personal_kind(model_type, name)
        if kind is not None and isinstance(value, str):
            data[name] = kind.mask(value)
            continue
        for nested in _models_in(field.annotation):
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    _mask_in_place(nested, item)


def personal_kind(model_type: type[BaseModel], field_name: str) -> Personal | None:
    field = model_type.model_fields.get(field_name)
    if field is None:
        return None
    return next((meta for meta in field.metadata if isinstance(meta, Personal)), None)


def kind_at(model_type: type[BaseModel], loc: Sequence[str | int]) -> Personal | None:
    """The personal kind of the field a validation error location points at, if any.

    Locations may hold list indices and union tags; those steps are skipped.
    """
    candidates: list[type[BaseModel]] = [model_type]
    last = len(loc) - 1
    for position, step in enumerate(loc):
        if not isinstance(step, str):
            continue
        holders = [model for model in candidates if step in model.model_fields]
        if not holders:
            continue  # a union tag such as "status_changed"
        if position == last:
            return next(filter(None, (personal_kind(m, step) for m in holders)), None)
        candidates = [
            nested for m in holders for nested in _models_in(m.model_fields[step].annotation)
        ] or candidates
    return None


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models inside an annotation such as `tuple[Fee, ...] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _models_in(typing.get_args(annotation)[0])
        return
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)
