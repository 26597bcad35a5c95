"""Dead-letter what is unsigned or wrongly signed, before anything reads the body."""

from __future__ import annotations

from bus.message import Message
from bus.middleware.base import Handler, Middleware
from bus.signing import KeyRing


class SignatureCheck(Middleware):
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def __call__(self, message: Message, call_next: Handler) -> None:
        self._keys.verify(message)
        await call_next(message)
