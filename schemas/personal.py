"""Personal data: which fields identify a person, and the one way to mask them.

Fields are marked where they are declared (`Annotated[str, Personal.ID_NUMBER]`), so a new
field is masked everywhere (logs, dead-letter views, error messages) the moment it is marked.
Free text, where no field says what is personal (a log line, an error message, a body that is
not the contract), goes through `mask_text`, which finds what looks like a person's number.
"""

from __future__ import annotations

import functools
import re
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


# How local systems and people spell personal keys, beside the contract's own names and the
# national portal's (`personal_keys` reads those from the contract).
_SPELLINGS = {
    Personal.NAME: ("applicant", "full_name", "ho_ten", "hoten", "ho_va_ten", "chu_ho_so",
                    "ten_chu_ho_so", "nguoi_nop", "ten_cong_dan", "citizen"),
    Personal.ID_NUMBER: ("so_giay_to", "so_cccd", "cccd", "so_cmnd", "cmnd", "cmnd_cccd",
                         "so_dinh_danh", "citizen_id"),
    Personal.PHONE: ("dien_thoai", "so_dien_thoai", "sdt", "mobile", "phone_number"),
    Personal.EMAIL: ("e_mail", "mail", "thu_dien_tu"),
    Personal.TEXT: ("address", "dia_chi", "thong_tin_khac", "noi_o", "thuong_tru"),
}  # fmt: skip


@functools.cache
def personal_keys() -> dict[str, Personal]:
    """Lower-cased keys whose values are a person's data, and their kind: the marked fields
    of the contract, their national portal names (`SoDienThoai`), and local spellings
    (`so_giay_to`). For data without a model: log lines, bodies that are not the contract."""
    # Imported here: the models import this module to mark their fields.
    from schemas.dossier import Applicant, Dossier
    from schemas.wire.table import DOSSIER_FIELDS

    keys = {
        name.lower(): kind
        for model in (Applicant, Dossier)
        for name in model.model_fields
        if (kind := personal_kind(model, name)) is not None
    }
    for pair in DOSSIER_FIELDS:
        if (kind := kind_at(Dossier, pair.path.split("."))) is not None:
            keys[pair.wire.lower()] = kind
    keys.update({key: kind for kind, spellings in _SPELLINGS.items() for key in spellings})
    return keys


# What looks like a person's data in free text. A number counts only standing alone: a digit,
# a letter, `-`, `.`, `_` or `@` beside it makes it part of something an operator traces by
# (the last group of a UUID, a dossier code's sequence, the fraction of a timestamp, a hex id)
# or of an e-mail address, masked as such.
_ALONE = r"(?<![\w.+\-@])"
_END = r"(?![\w\-@]|\.\d)"  # a sentence's full stop may follow, a decimal's may not
_NUMBERS = re.compile(
    rf"{_ALONE}(?:"
    # 0 and 9-10 digits (mobile 10, landline 11), or +84 / 84 instead of the 0.
    rf"(?P<phone>(?:\+84|84|0)[0-9]{{9,10}}){_END}"
    # The same, written in groups: 0912 345 678, 0912.345.678, (+84) 912 345 678.
    rf"|(?P<grouped>(?:\(?\+84\)?[ .]?|0)[0-9]{{2,3}}(?:[ .][0-9]{{3,4}}){{2}}){_END}"
    # A căn cước (12 digits) or an old chứng minh nhân dân (9 digits).
    rf"|(?P<id_number>[0-9]{{12}}|[0-9]{{9}}){_END})"
)
_AROUND_AT = re.compile(
    # user:password@ of a URL: a secret, not personal, but it rides in the same texts.
    r"(?<=://)(?P<password>[^\s:/@]*:[^\s/@]+)(?=@)"
    # Starting only where a word starts: a long word is not scanned again from each letter.
    r"|(?<![\w.+\-])(?P<email>[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+)"
)
# "key": "value" of JSON, or 'key': 'value' of a Python repr, inside a text.
_PAIR = re.compile(
    r"""(?P<q>["'])(?P<key>[^"'\s]{1,40})(?P=q)\s*:\s*(?P<v>["'])"""
    r"""(?P<value>(?:\\.|(?!(?P=v))[^\\])*)(?P=v)"""
)
_DIGIT = re.compile(r"[0-9]")


def mask_text(text: str) -> str:
    """Free text with every identity number (12 or 9 digits), phone number (0 or +84 and 9-10
    digits, whole or in groups) and e-mail address masked as `Personal` masks them, the
    value of a quoted pair whose key names personal data (`"ho_ten": "..."`) masked as its
    kind, and the password of a URL (`amqp://user:***@host`) hidden.

    Numbers are masked only when they stand alone, so UUIDs, dossier codes, timestamps, seq
    numbers, ports and durations stay readable; a number glued to letters is not found, nor
    is a name outside a quoted pair.
    """
    # Most texts hold no pair, no '@' and no long number: quick looks spare them the patterns.
    if '":' in text or "':" in text:
        text = _PAIR.sub(_masked_pair, text)
    if "@" in text:
        text = _AROUND_AT.sub(_masked_match, text)
    if len(text) < 9 or _DIGIT.search(text) is None:  # too short to hold a 9-digit number
        return text
    return _NUMBERS.sub(_masked_match, text)


def _masked_pair(found: re.Match[str]) -> str:
    kind = personal_keys().get(found["key"].lower())
    if kind is None:
        return found[0]
    start, end = found.span("value")
    whole = found.start()
    return found[0][: start - whole] + kind.mask(found["value"]) + found[0][end - whole :]


def _masked_match(found: re.Match[str]) -> str:
    kind, value = found.lastgroup, found[0]
    if kind == "password":
        user = value.partition(":")[0]
        return f"{user}:***"
    if kind == "email":
        return Personal.EMAIL.mask(value)
    if kind == "id_number":
        return Personal.ID_NUMBER.mask(value)
    if kind == "grouped" and _digit_count(value) not in _PHONE_DIGITS["+" in value[:2]]:
        return value  # grouped like a phone number, but too short or too long for one
    return Personal.PHONE.mask(value)


_PHONE_DIGITS = {False: (10, 11), True: (11, 12)}  # by whether it starts with +84


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


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
