"""The middleware protocol: a callable that wraps the rest of the chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from bus.message import Message

Handler = Callable[[Message], Awaitable[None]]


class Middleware:
    """Does nothing by default; subclasses override what they need."""

    async def __call__(self, message: Message, call_next: Handler) -> None:
        await call_next(message)

    async def on_start(self) -> None:
        """Called once before the first message."""

    async def on_stop(self) -> None:
        """Called once after the last message."""


def chain(middleware: Sequence[Middleware], handler: Handler) -> Handler:
    """Compose once at start-up, so a message pays for no list walking, and one coroutine
    per middleware."""
    step = handler
    for outer in reversed(middleware):
        step = partial(outer.__call__, call_next=step)
    return step
