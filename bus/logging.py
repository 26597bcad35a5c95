"""structlog set-up: JSON lines in production, readable lines at a terminal.

Every line written while a message is handled carries its event_id, dossier_code, unit and
connector: the LogContext middleware records which message the task is handling, and a
processor adds them to each line, so a message that logs nothing costs nothing.

No line shows a person's data: every text of every line (values nested in dicts and lists,
the rendered traceback too) goes through `mask_text`, and values under a key that names
personal data (`name`, `phone`, `so_giay_to`, ...) are masked as that kind. Lines of the
standard library's loggers (uvicorn, asyncio) go through the same processors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import orjson
import structlog
from pydantic import BaseModel

from bus.headers import DOSSIER_CODE
from bus.message import Message
from bus.settings import Settings
from schemas.personal import Personal, mask_text, masked, personal_keys

handling: ContextVar[Message | None] = ContextVar("bus_handling", default=None)


def mask_personal_data(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask every value of the line: by its key's kind when the key names personal data,
    else as free text."""
    keys = personal_keys()
    for key, value in event.items():
        kind = keys.get(key.lower())
        # Nearly every value is a text under a plain key: it goes straight to mask_text.
        if kind is None and type(value) is str:
            event[key] = mask_text(value)
        else:
            event[key] = _masked(value, kind, keys)
    return event


def _masked(value: Any, kind: Personal | None, keys: dict[str, Personal]) -> Any:
    if isinstance(value, str):
        return mask_text(value) if kind is None else kind.mask(value)
    if value is None or isinstance(value, bool | float | datetime | date | UUID | Enum):
        return value
    if isinstance(value, int):
        return value if kind is None else kind.mask(str(value))
    if isinstance(value, dict):
        return {k: _masked(v, keys.get(str(k).lower()), keys) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(item, kind, keys) for item in value]
    if isinstance(value, BaseModel):  # the contract knows its own personal fields
        return _masked(masked(value), kind, keys)
    return _masked(repr(value), kind, keys)  # as the renderers would show it


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


class _StandardLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The standard library's log records, rendered and masked as the bus's own lines, on
    the stderr of the moment (as the records went before: a test may swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _stream: Any) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    # The traceback becomes text before masking, in both formats: an exception's message may
    # quote a person's data, and a pretty console traceback would print local variables.
    masking: list[structlog.typing.Processor] = [
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    stamps: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            add_message_context,  # before merge: the message at hand beats a stale binding
            structlog.contextvars.merge_contextvars,
            *masking,
            *stamps,  # after masking: nothing personal in them, and they are read often
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = _StandardLines()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[add_message_context, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *masking,
                *stamps,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StandardLines)]:
        root.removeHandler(old)
    root.addHandler(handler)  # the root's level stays: warnings and errors, as before
