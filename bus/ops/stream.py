"""Reading a stream from a point up to where it ended when the reading began.

A stream is never empty-and-done the way a queue is: it keeps every message and keeps
growing. So a reader first finds the stream's last offset (a consumer at "last" gets the
last chunk), then reads from its start point (a timestamp, an offset, "first") and stops at
that offset: what arrives meanwhile is for the next reader. Stream consumers need a prefetch
and manual acks, which here only grant the broker credit for more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from bus.broker import Channel, Connection
from bus.message import Message

OFFSET = "x-stream-offset"
PREFETCH = 500
Start = datetime | int | str  # a moment, an offset, or "first" / "last" / "next"


async def stream_end(connection: Connection, stream: str, *, idle: float = 0.3) -> int | None:
    """The offset of the stream's last message now; None when it holds none."""
    channel = await connection.channel()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    tag = await channel.consume(
        stream, inbox.put_nowait, prefetch=PREFETCH, arguments={OFFSET: "last"}
    )
    last: int | None = None
    deadline = time.monotonic() + 5 * idle + 1  # a busy stream never goes quiet
    try:
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(inbox.get(), idle)
            except TimeoutError:
                break
            channel.ack(message.delivery_tag)
            last = max(last if last is not None else -1, offset_of(message))
    finally:
        await _stop(channel, tag)
    return last


async def read_stream(
    connection: Connection,
    stream: str,
    start: Start,
    handle: Callable[[Message, int], Awaitable[None]],
    *,
    idle: float = 2.0,
) -> int:
    """Call `handle(message, end)` for each message from `start` up to the stream's end as
    it is now; how many were handled. `idle`: how long to wait for a first message (a
    start past every message delivers none)."""
    end = await stream_end(connection, stream)
    if end is None:
        return 0
    channel = await connection.channel()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    tag = await channel.consume(
        stream, inbox.put_nowait, prefetch=PREFETCH, arguments={OFFSET: start}
    )
    handled = 0
    try:
        while True:
            try:
                message = await asyncio.wait_for(inbox.get(), idle)
            except TimeoutError:
                return handled
            offset = offset_of(message)
            if offset > end:
                return handled
            await handle(message, end)
            channel.ack(message.delivery_tag)
            handled += 1
            if offset == end:
                return handled
    finally:
        await _stop(channel, tag)


def offset_of(message: Message) -> int:
    return int(message.headers.get(OFFSET, -1))


async def _stop(channel: Channel, tag: str) -> None:
    with contextlib.suppress(Exception):
        await channel.cancel(tag)
    await channel.close()
