"""Turn a failure into a retry or a dead letter, as the error's class decides.

A retry is a copy in the next retry queue, whose TTL sends it back to the work queue; the
attempt number travels in a header, so the limit holds however many consumers there are.
The copy is confirmed before the original is acked: a crash in between duplicates, never
loses.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from bus import headers
from bus.errors import Disposition, disposition_of
from bus.message import Message
from bus.middleware.base import Handler, Middleware
from bus.publisher import Publisher
from bus.settings import Settings
from bus.topology import DEAD_LETTER_QUEUE, retry_tier_for
from schemas.personal import mask_text

log = structlog.get_logger(__name__)


class Retries(Middleware):
    def __init__(self, publisher: Publisher, settings: Settings) -> None:
        self._publisher = publisher
        self._settings = settings

    async def __call__(self, message: Message, call_next: Handler) -> None:
        try:
            await call_next(message)
        except Exception as error:  # the error's class decides what happens next
            await self._route(message, error)
        else:
            if message.outcome == "pending":
                message.outcome = "processed"

    async def _route(self, message: Message, error: Exception) -> None:
        disposition, reason = disposition_of(error)
        now = datetime.now(UTC).isoformat()
        history = {
            headers.FIRST_FAILURE: message.headers.get(headers.FIRST_FAILURE, now),
            headers.LAST_FAILURE: now,
            headers.REASON: reason,
            headers.ERROR_CLASS: type(error).__name__,
            # Errors may quote what they refused (a portal echoes values): masked, the copy
            # is read by people.
            headers.ERROR: mask_text(str(error))[:1000],
        }
        attempt = message.attempt
        retry_queue = (
            retry_tier_for(attempt, self._settings) if disposition is Disposition.RETRY else None
        )
        if retry_queue is not None:
            copy = message.forwarded("", retry_queue, **history, **{headers.ATTEMPT: attempt + 1})
            await self._publisher.publish(copy)
            message.outcome = "retried"
            log.warning(
                "message failed, will retry",
                reason=reason,
                error=str(error),
                attempt=attempt,
                retry_queue=retry_queue,
            )
            return
        copy = message.forwarded("", DEAD_LETTER_QUEUE, **history, **{headers.ATTEMPT: attempt})
        await self._publisher.publish(copy)
        message.outcome = "dead_lettered"
        log.error("message dead-lettered", reason=reason, error=str(error), attempt=attempt)
