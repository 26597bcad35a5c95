"""One dead-lettered event, as operators see it.

Built from the message in portal.sync.dlq: the bus's own headers (`bus/headers.py`, written
by the Retries middleware) say why it failed, how often and when; the broker's `x-death`
trail stands in for them when the broker itself dead-lettered it (its delivery limit). The
body is kept byte for byte, so that a replay is the very message the connector signed, and
shown only through `masked_body()`.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict

from bus import headers
from bus.message import Message
from schemas import ContractError, decode_event
from schemas.personal import mask_text, masked

Status = Literal["waiting", "replayed", "discarded"]
SHOWN_TEXT = 2000  # characters of a body that is not an event, shown as text
# An error message may quote what was refused. The Retries middleware masks what it writes;
# a copy from elsewhere, or a letter stored before it did, is masked when read.
MaskedText = Annotated[str, AfterValidator(mask_text)]


class Failure(BaseModel):
    """One trip to the dead-letter queue; a replayed event that fails again adds one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str
    error_class: str
    error: MaskedText
    attempts: int
    first_failure: datetime | None
    last_failure: datetime | None
    dead_lettered_at: datetime
    replayed_by: str | None = None  # who had replayed it before this failure


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # the event's message id
    unit: str
    dossier_code: str | None
    event_type: str | None
    connector: str | None  # the AMQP app_id
    reason: str
    error_class: str
    error: MaskedText
    attempts: int
    first_failure: datetime | None
    last_failure: datetime | None
    dead_lettered_at: datetime
    replays: int = 0
    status: Status = "waiting"
    routing_key: str  # the connector's, not the dead-letter queue's
    headers: dict[str, Any]
    body: bytes
    timestamp: int | None  # the AMQP timestamp: when the event occurred, in seconds
    content_type: str | None = None
    history: tuple[Failure, ...] = ()  # every trip to the dead-letter queue, oldest first

    @classmethod
    def from_message(cls, message: Message, *, now: datetime | None = None) -> DeadLetter:
        values = message.headers
        death = _first_death(values)
        routing_key = str(
            values.get(headers.ORIGINAL_ROUTING_KEY)
            or (death.get("routing-keys") or [message.routing_key])[0]
        )
        failure = Failure(
            reason=_text(values.get(headers.REASON) or death.get("reason") or "unknown"),
            error_class=_text(values.get(headers.ERROR_CLASS) or ""),
            error=_text(values.get(headers.ERROR) or _death_error(death)),
            attempts=int(values.get(headers.ATTEMPT) or death.get("count") or 1),
            first_failure=_moment(values.get(headers.FIRST_FAILURE)),
            last_failure=_moment(values.get(headers.LAST_FAILURE)),
            # The Retries middleware publishes the copy the moment it records the failure.
            dead_lettered_at=_moment(values.get(headers.LAST_FAILURE)) or now or datetime.now(UTC),
            replayed_by=_text(values[headers.REPLAYED_BY])
            if headers.REPLAYED_BY in values
            else None,
        )
        dossier_code = values.get(headers.DOSSIER_CODE)
        return cls(
            id=message.message_id or _body_id(message.body),
            unit=routing_key.partition(".")[0],
            dossier_code=_text(dossier_code) if dossier_code else None,
            event_type=message.type,
            connector=message.app_id,
            **failure.model_dump(exclude={"dead_lettered_at", "replayed_by"}),
            dead_lettered_at=failure.dead_lettered_at,
            replays=int(values.get(headers.REPLAYS) or 0),
            routing_key=routing_key,
            headers=_with_publisher(plain(values), message),
            body=message.body,
            timestamp=message.timestamp,
            content_type=message.content_type,
            history=(failure,),
        )

    @property
    def occurred_at(self) -> datetime | None:
        return None if self.timestamp is None else datetime.fromtimestamp(self.timestamp, UTC)

    def masked_body(self) -> dict[str, Any]:
        """The body for a person's eyes: the event with every personal field masked, or,
        when it is not an event of the contract, `{"text": ...}` cut short (never parsed
        further: it may hold anything) or `{"bytes": ...}` for what is not UTF-8."""
        try:
            return masked(decode_event(self.body))
        except ContractError:
            pass
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {"bytes": len(self.body), "base64": base64.b64encode(self.body[:96]).decode()}
        # Not the contract, so its fields cannot be told apart: a person sees only its shape.
        shown = text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT] + "…"
        return {"text": mask_text(shown), "length": len(text)}

    def masked_headers(self) -> dict[str, Any]:
        """Headers for display: the signature is noise to a person; the texts of the rest
        (the error, above all) are masked like any free text."""
        return {k: _masked(v) for k, v in self.headers.items() if k != headers.SIGNATURE}


def plain(value: Any) -> Any:
    """Header values as JSON can hold them (pika gives bytes, datetimes, Decimals)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _first_death(values: dict[str, Any]) -> dict[str, Any]:
    deaths = values.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict):
        return deaths[-1]  # the oldest: the broker puts the latest first
    return {}


def _death_error(death: dict[str, Any]) -> str:
    if not death:
        return ""
    reason, queue = _text(death.get("reason")), _text(death.get("queue"))
    return f"dead-lettered by the broker ({reason}) from {queue}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(_text(value))
        except ValueError:
            return None
    # Stored as UTC: SQLite keeps no offset.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _body_id(body: bytes) -> str:
    # A message with no id (not published by a connector): its body names it.
    return "body-" + hashlib.sha256(body).hexdigest()[:24]


def _masked(value: Any) -> Any:
    """Plain header values with every text masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    return orjson.dumps(plain(value))


def _with_publisher(values: dict[str, Any], message: Message) -> dict[str, Any]:
    """A message the broker dead-lettered itself (its delivery limit) never went through
    the bus's retries: who published it is only in its `user_id`, which a replay, made under
    the operator's user, must carry on in the header the sync side reads."""
    if headers.PUBLISHED_BY not in values and message.user_id:
        return {**values, headers.PUBLISHED_BY: message.user_id}
    return values
