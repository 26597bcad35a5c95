"""Wire dates: `yyyyMMddHHmmss`, the wall-clock time in Vietnam; a missing date is ""."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Final

from schemas.errors import ContractError

# UTC+7 has been Vietnam's offset since 1975. A fixed offset, not Asia/Ho_Chi_Minh: the wire has
# one rule for every year (the tz database would say +8 before mid-1975), and needs no tz data.
VIETNAM_TIME: Final = timezone(timedelta(hours=7), "UTC+07:00")
WIRE_TIME_PATTERN: Final = r"^\d{14}$"

_WIRE_TIME = re.compile(WIRE_TIME_PATTERN, re.ASCII)  # \d alone would take Thai or Arabic digits
_RULE = "a wire date must be yyyyMMddHHmmss in Vietnam time (UTC+7), e.g. 20240115153000"


def to_wire_time(moment: datetime) -> str:
    """`yyyyMMddHHmmss` of the moment in Vietnam time, whatever zone it was given in."""
    if moment.utcoffset() is None:
        raise ValueError("a naive datetime is no moment: give it a time zone")
    t = moment.astimezone(VIETNAM_TIME)
    # Not strftime: writing is the hot path, and %Y does not pad years before 1000 everywhere.
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"


def from_wire_time(text: str | None) -> datetime | None:
    """The moment a wire date names, or None for the wire's missing date ("" or null)."""
    if text is None or text == "":
        return None
    try:
        return parse_wire_time(text)
    except ValueError as error:
        raise ContractError.single("wire date", text, str(error)) from None


def parse_wire_time(text: str) -> datetime:
    """The moment a present wire date names; ValueError saying the rule when it names none."""
    if _WIRE_TIME.fullmatch(text) is None:
        raise ValueError(_RULE)
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second = int(text[8:10]), int(text[10:12]), int(text[12:])
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=VIETNAM_TIME)
    except ValueError:
        raise ValueError(f"no such moment: {_RULE}") from None
