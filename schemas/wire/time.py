"""Wire dates: `yyyyMMddHHmmss`, the wall-clock time in Vietnam; a missing date is ""."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Final

from schemas.errors import ContractError

# UTC+7 has been Vietnam's offset since 1975. A fixed offset, not Asia/Ho_Chi_Minh: the wire has
# one rule for every year (the tz database would say +8 before mid-1975), and needs no tz data.
_VIETNAM_OFFSET: Final = timedelta(hours=7)
VIETNAM_TIME: Final = timezone(_VIETNAM_OFFSET, "UTC+07:00")
WIRE_TIME_PATTERN: Final = r"^\d{14}$"

_WIRE_TIME = re.compile(WIRE_TIME_PATTERN, re.ASCII)  # \d alone would take Thai or Arabic digits
_WALL_CLOCK = "%04d%02d%02d%02d%02d%02d"  # yyyyMMddHHmmss
_RULE = "a wire date must be yyyyMMddHHmmss in Vietnam time (UTC+7), e.g. 20240115153000"


def to_wire_time(moment: datetime) -> str:
    """`yyyyMMddHHmmss` of the moment in Vietnam time, whatever zone it was given in."""
    # A dossier's dates repeat in every snapshot of it (submitted, received, due...): each
    # is spelled once, then looked up. Equal moments spell the same, but two wall-clock
    # times of one zone compare equal across a repeated hour: the fold tells them apart.
    key = (moment, moment.fold)
    if (spelled := _SPELLED.get(key)) is None:
        if len(_SPELLED) >= _SPELLED_MAX:
            _SPELLED.clear()
        spelled = _SPELLED[key] = _spelled(moment)
    return spelled


_SPELLED: dict[tuple[datetime, int], str] = {}
_SPELLED_MAX: Final = 16_384  # the dates of the dossiers at hand; more only holds memory


def _spelled(moment: datetime) -> str:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("a naive datetime is no moment: give it a time zone")
    # Moving the wall clock by the difference of the offsets gives astimezone's fields for a
    # fraction of its cost: writing is the hot path.
    t = moment + (_VIETNAM_OFFSET - offset)
    # Not strftime, nor an f-string's format specifications: %Y does not pad years before 1000
    # everywhere, and %-formatting is twice as fast.
    return _WALL_CLOCK % (t.year, t.month, t.day, t.hour, t.minute, t.second)


def from_wire_time(text: str | None) -> datetime | None:
    """The moment a wire date names, in Vietnam time, or None when it is missing ("" or null)."""
    if text is None or text == "":
        return None
    try:
        return parse_wire_time(text).astimezone(VIETNAM_TIME)
    except ValueError as error:
        raise ContractError.single("wire date", text, str(error)) from None


def parse_wire_time(text: str) -> datetime:
    """The moment a present wire date names, in UTC; ValueError saying the rule when it names none.

    UTC is the contract's zone: a moment read in it is one the models need not convert.
    """
    if _WIRE_TIME.fullmatch(text) is None:
        raise ValueError(_RULE)
    try:
        # The wall clock read as if it were UTC's, then moved back by Vietnam's offset: a third
        # of the cost of building the datetime from six int()s and converting it.
        wall_clock = datetime.fromisoformat(f"{text[:8]}T{text[8:]}+00:00")
    except ValueError:
        raise ValueError(f"no such moment: {_RULE}") from None
    try:
        return wall_clock - _VIETNAM_OFFSET
    except OverflowError:  # the first hours of year 1 have no UTC; the models refuse them anyway
        return wall_clock.replace(tzinfo=VIETNAM_TIME)
