"""structlog set-up: JSON lines in production, readable lines at a terminal.

Every line written while a message is handled carries its event_id, dossier_code, unit and
connector: the LogContext middleware records which message the task is handling, and a
processor adds them to each line, so a message that logs nothing costs nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import orjson
import structlog

from bus.headers import DOSSIER_CODE
from bus.message import Message
from bus.settings import Settings

handling: ContextVar[Message | None] = ContextVar("bus_handling", default=None)


def add_message_context(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    message = handling.get()
    if message is not None:
        event.setdefault("event_id", message.message_id)
        event.setdefault("dossier_code", message.headers.get(DOSSIER_CODE))
        event.setdefault("unit", message.unit)
        event.setdefault("connector", message.app_id)
    return event


def _orjson_dumps(data: Any, default: Any) -> str:
    return orjson.dumps(data, default=default).decode()


def configure_logging(settings: Settings) -> None:
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            add_message_context,  # before merge: the message at hand beats a stale binding
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
