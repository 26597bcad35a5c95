"""The bus's own message types and header names: what the rest of the code sees instead of
AMQP frames and properties."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.headers import (
    ATTEMPT,
    BUS_OWNED,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    PUBLISHED_BY,
)
from schemas import Event

CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish: persistent and mandatory, always."""

    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    content_type: str = CONTENT_TYPE
    type: str | None = None
    app_id: str | None = None
    user_id: str | None = None
    timestamp: int | None = None


@dataclass(slots=True)
class Message:
    """A delivery being handled. Middleware fills `event` and `outcome` as it goes."""

    body: bytes
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    redelivered: bool
    delivery_tag: int
    message_id: str | None = None
    content_type: str | None = None
    type: str | None = None
    app_id: str | None = None
    user_id: str | None = None
    timestamp: int | None = None
    generation: int = 0  # which channel delivered it: tags are only valid on that channel
    event: Event | None = None
    outcome: str = "pending"

    def __post_init__(self) -> None:
        # x-bus-* headers are the bus's own history, and come back only through the default
        # exchange, from a retry queue. A connector's message arrives through the events
        # exchange: drop any it sent, or it could skip retries, forge failure times, or
        # claim another unit's routing key.
        if self.exchange and not BUS_OWNED.isdisjoint(self.headers):
            self.headers = {k: v for k, v in self.headers.items() if k not in BUS_OWNED}

    @property
    def attempt(self) -> int:
        """1 for a first delivery; retried copies carry the number in a header."""
        return int(self.headers.get(ATTEMPT, 1))

    @property
    def original_routing_key(self) -> str:
        """The routing key the connector used, even after a trip through a retry queue."""
        return str(self.headers.get(ORIGINAL_ROUTING_KEY, self.routing_key))

    @property
    def unit(self) -> str:
        return self.original_routing_key.partition(".")[0]

    @property
    def published_by(self) -> str | None:
        """The broker user who published the event. The broker vouches for the `user_id` of
        what arrives through an exchange; a copy that comes back through the default exchange
        was re-published by the bus under its own user, and carries the first publisher in a
        header only the bus can write (the default exchange is closed to connectors)."""
        if self.exchange:
            return self.user_id
        found = self.headers.get(PUBLISHED_BY)
        if isinstance(found, bytes):
            return found.decode("utf-8", "replace")
        return None if found is None else str(found)

    def forwarded(self, exchange: str, routing_key: str, **headers: Any) -> Outgoing:
        """A copy for a retry or dead-letter queue: body untouched, history in headers."""
        publisher = self.published_by
        return Outgoing(
            exchange=exchange,
            routing_key=routing_key,
            body=self.body,
            headers={
                ORIGINAL_EXCHANGE: self.headers.get(ORIGINAL_EXCHANGE, self.exchange),
                ORIGINAL_ROUTING_KEY: self.original_routing_key,
                **{k: v for k, v in self.headers.items() if not _broker_history(k)},
                **({PUBLISHED_BY: publisher} if publisher is not None else {}),
                **headers,
            },
            message_id=self.message_id,
            content_type=self.content_type or CONTENT_TYPE,
            type=self.type,
            app_id=self.app_id,
            timestamp=self.timestamp,
        )


def _broker_history(header: str) -> bool:
    # The broker's own dead-letter trail grows on every trip through a retry queue; the
    # x-bus-* headers already tell the story.
    return header == "x-death" or header.startswith(("x-first-death", "x-last-death"))
