"""Make every log line written while a message is handled name that message."""

from __future__ import annotations

from bus.logging import handling
from bus.message import Message
from bus.middleware.base import Handler, Middleware


class LogContext(Middleware):
    async def __call__(self, message: Message, call_next: Handler) -> None:
        # A worker handles one message after another in one context: nothing of a message
        # may outlive it. (Handlers that bind more use structlog's bound_contextvars.)
        token = handling.set(message)
        try:
            await call_next(message)
        finally:
            handling.reset(token)
