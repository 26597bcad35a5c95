"""What every model of the contract shares: frozen, strict about unknown fields, and
second-precision timestamps in UTC (the national portal keeps nothing finer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints


class Contract(BaseModel):
    # hide_input_in_errors: a raw pydantic error must never print a citizen's id number;
    # ContractError re-adds the value, masked.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


_ZERO = timedelta(0)


def _in_utc(moment: datetime) -> datetime:
    # One zone for every moment: equal moments are then equal models, and no odd offset
    # (an ambiguous local hour, seconds in an offset) survives to trip a round trip. Most
    # arrive in UTC already, and converting is the expensive part.
    return moment if moment.utcoffset() == _ZERO else moment.astimezone(UTC)


def _whole_seconds_in_utc(moment: datetime) -> datetime:
    if moment.microsecond or moment.utcoffset() != _ZERO:
        return moment.astimezone(UTC).replace(microsecond=0)
    return moment


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

Timestamp = Annotated[
    AwareDatetime, Field(ge=EARLIEST, lt=LATEST), AfterValidator(_whole_seconds_in_utc)
]
"""A moment of the dossier's life, in UTC; sub-second parts are dropped, as the wire drops them."""

Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A moment of the event itself (when it occurred, when a fee was paid), in UTC."""


# Text is never empty: an absent value is None, so that it round-trips through the wire's "".
Code = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


Link = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
"""Documents and results travel as download links, never as file bodies."""
