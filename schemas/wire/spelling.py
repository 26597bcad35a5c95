"""How each wire type is spelled: written one way, read in every way vendors send it.

Flags are written "1"/"0" because vendors keep them as codes in 2-character varchar columns;
IsDeleted is written "True"/"False", like the envelope's isUpdating. Vendors mix the two, so
both are read either way, and "true"/"false" too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from schemas.wire.table import WireType
from schemas.wire.time import parse_wire_time, to_wire_time


def _write_number(value: int) -> str:
    return str(int(value))  # int(): a LabelledCode's own str() adds its label


def _write_flag(value: bool) -> str:
    return "1" if value else "0"


def _write_boolean(value: bool) -> str:
    return "True" if value else "False"


WRITERS: Final[dict[WireType, Callable[[Any], str]]] = {
    WireType.TEXT: str,  # str(): identifiers are str subclasses
    WireType.CODE: _write_number,
    WireType.NUMBER: _write_number,
    WireType.DATE: to_wire_time,
    WireType.FLAG: _write_flag,
    WireType.BOOLEAN: _write_boolean,
}
"""The wire string of a present valid normalized value; the writer writes None (absent) as ""."""


_DIGITS = re.compile(r"[0-9]{1,18}")  # 18: int() of a huge string is slow, and no code is that long
# Nearly every code, and many a quantity, is a small number: looking it up is cheaper than
# matching and converting it. Any other spelling ("07" too) is read the long way.
_SMALL = {str(n): n for n in range(100)}
_TRUTHS = {"1": True, "True": True, "true": True, "0": False, "False": False, "false": False}


def _read_code(text: str) -> int:
    if (small := _SMALL.get(text)) is not None:
        return small
    return _decimal(text, 'a code must be a decimal string, e.g. "10"')


def _read_number(text: str) -> int:
    if (small := _SMALL.get(text)) is not None:
        return small
    return _decimal(text, 'an amount or quantity must be a whole decimal string, e.g. "100000"')


def _decimal(text: str, rule: str) -> int:
    if _DIGITS.fullmatch(text) is None:
        raise ValueError(rule)
    return int(text)


def _read_truth(text: str) -> bool:
    try:
        return _TRUTHS[text]
    except KeyError:
        raise ValueError('must be "1" or "0" (flags), or "True" or "False" (IsDeleted)') from None


READERS: Final[dict[WireType, Callable[[str], object]]] = {
    WireType.TEXT: str,
    WireType.CODE: _read_code,
    WireType.NUMBER: _read_number,
    WireType.DATE: parse_wire_time,
    WireType.FLAG: _read_truth,
    WireType.BOOLEAN: _read_truth,
}
"""The normalized value of a present (non-empty) wire string; ValueError saying the rule."""
