"""Refuse bodies that are too large, then turn the rest into validated contract events
routed under their own unit, whose x-dossier-code header (what picks a sync shard) names
their own dossier."""

from __future__ import annotations

from bus.errors import InvalidMessage, UnknownEventType
from bus.headers import DOSSIER_CODE
from bus.message import Message
from bus.middleware.base import Handler, Middleware
from schemas import ContractError, decode_event


class BodyLimit(Middleware):
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    async def __call__(self, message: Message, call_next: Handler) -> None:
        if len(message.body) > self._max_bytes:
            raise InvalidMessage(
                f"body of {len(message.body)} bytes is over the {self._max_bytes}-byte limit",
                reason="too_large",
            )
        await call_next(message)


class Decode(Middleware):
    async def __call__(self, message: Message, call_next: Handler) -> None:
        try:
            message.event = decode_event(message.body)
        except ContractError as error:
            raise _classified(message.body, error) from None
        # The broker lets a connector publish only under its own unit's routing keys: a
        # body naming another unit's dossier must not ride in under them.
        if message.event.unit != message.unit:
            raise InvalidMessage(
                f"event of unit {message.event.unit} published under routing key "
                f"{message.original_routing_key!r}",
                reason="contract",
            )
        # The header picks the shard (a hash of it): one that lies about the dossier would
        # put the dossier's events on two shards, out of each other's order. A message
        # without it is hashed as every other such message is, onto one shard: no lie.
        said = message.headers.get(DOSSIER_CODE)
        if isinstance(said, bytes):
            said = said.decode("utf-8", "replace")
        if said is not None and str(said) != str(message.event.dossier_code):
            raise InvalidMessage(
                f"header {DOSSIER_CODE} names dossier {said!r}, the body "
                f"{str(message.event.dossier_code)!r}",
                reason="contract",
            )
        await call_next(message)


def _classified(body: bytes, error: ContractError) -> InvalidMessage | UnknownEventType:
    # Only the failure path pays for telling the reasons apart.
    first = error.problems[0].rule if error.problems else ""
    if first.startswith("Invalid JSON"):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return InvalidMessage("body is not UTF-8", reason="not_utf8")
        return InvalidMessage(f"body is not JSON: {first}", reason="not_json")
    if "does not match any of the expected tags" in first or "Unable to extract tag" in first:
        return UnknownEventType(str(error))
    return InvalidMessage(str(error), reason="contract")
