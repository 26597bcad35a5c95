"""How each wire type is spelled: written one way, read in every way vendors send it.

Flags are written "1"/"0" because vendors keep them as codes in 2-character varchar columns;
IsDeleted is written "True"/"False", like the envelope's isUpdating. Vendors mix the two, so
both are read either way, and "true"/"false" too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from schemas.wire.table import WireType
from schemas.wire.time import parse_wire_time, to_wire_time


def _write_text(value: str | None) -> str:
    return "" if value is None else str(value)  # str(): identifiers are str subclasses


def _write_number(value: int) -> str:
    return str(int(value))  # int(): a LabelledCode's own str() adds its label


def _write_date(value: datetime | None) -> str:
    return "" if value is None else to_wire_time(value)


def _write_flag(value: bool) -> str:
    return "1" if value else "0"


def _write_boolean(value: bool) -> str:
    return "True" if value else "False"


WRITERS: Final[dict[WireType, Callable[[Any], str]]] = {
    WireType.TEXT: _write_text,
    WireType.CODE: _write_number,
    WireType.NUMBER: _write_number,
    WireType.DATE: _write_date,
    WireType.FLAG: _write_flag,
    WireType.BOOLEAN: _write_boolean,
}
"""The wire string of a valid normalized value; None (absent) is written ""."""


_DIGITS = re.compile(r"[0-9]{1,18}")  # 18: int() of a huge string is slow, and no code is that long
_TRUTHS = {"1": True, "True": True, "true": True, "0": False, "False": False, "false": False}


def _read_code(text: str) -> int:
    if _DIGITS.fullmatch(text) is None:
        raise ValueError('a code must be a decimal string, e.g. "10"')
    return int(text)


def _read_number(text: str) -> int:
    if _DIGITS.fullmatch(text) is None:
        raise ValueError('an amount or quantity must be a whole decimal string, e.g. "100000"')
    return int(text)


def _read_truth(text: str) -> bool:
    if text not in _TRUTHS:
        raise ValueError('must be "1" or "0" (flags), or "True" or "False" (IsDeleted)')
    return _TRUTHS[text]


READERS: Final[dict[WireType, Callable[[str], object]]] = {
    WireType.TEXT: str,
    WireType.CODE: _read_code,
    WireType.NUMBER: _read_number,
    WireType.DATE: parse_wire_time,
    WireType.FLAG: _read_truth,
    WireType.BOOLEAN: _read_truth,
}
"""The normalized value of a present (non-empty) wire string; ValueError saying the rule."""
