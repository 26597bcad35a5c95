"""Structured logs: with JSON logging configured, every line written while a message is
handled, by the handler or by the bus, names the event, its dossier, unit and connector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from consumer_support import CONNECTOR, Recorder, bus_in, consuming, eventually

from bus.errors import TransientError
from bus.logging import configure_logging
from bus.message import Message
from bus.settings import Settings
from factories import a_status_changed


@contextlib.contextmanager
def json_logging() -> Iterator[None]:
    """JSON logging to stderr, as production configures it, for the block's duration.

    Call it inside the test itself: pytest swaps sys.stderr between the setup and call
    phases, and configure_logging keeps the stream it finds. It also caches each logger on
    first use, and a cached logger would write to this test's closed capture in later tests,
    so nothing is cached here.
    """
    configure_logging(Settings(log_format="json"))
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield
    finally:
        structlog.reset_defaults()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def identity(event: Any) -> dict[str, str]:
    return {
        "event_id": str(event.event_id),
        "dossier_code": str(event.dossier_code),
        "unit": "H29",
        "connector": CONNECTOR,
    }


@pytest.mark.parametrize(
    "prefetch",
    [
        pytest.param(1, id="one-after-another"),  # each message follows another in one worker
        pytest.param(10, id="interleaved"),  # handlers wait on I/O side by side
    ],
)
def test_every_line_a_handler_writes_names_the_event_dossier_unit_and_connector(
    vhost: str, capfd: pytest.CaptureFixture[str], prefetch: int
) -> None:
    events = [a_status_changed(seq=n) for n in range(1, 21)]
    log = structlog.get_logger("sync")
    running, most = 0, 0

    async def handler(message: Message) -> None:
        nonlocal running, most
        seen = str(message.event.event_id if message.event else "")
        running += 1
        most = max(most, running)
        log.info("received", seen=seen)
        await asyncio.sleep(0.02)  # others run meanwhile: contexts must not leak between them
        log.info("sending to the portal", seen=seen)
        running -= 1

    recorder = Recorder()

    async def both(message: Message) -> None:
        await recorder(message)
        await handler(message)

    async def scenario() -> None:
        async with bus_in(vhost) as bus:
            await bus.publish(*events)  # all waiting: the consumer gets `prefetch` at once
            async with consuming(bus, both, prefetch=prefetch):
                await eventually(lambda: len(recorder.seen) == len(events), what="every event")
                await asyncio.sleep(0.1)
        log.info("all done")  # written outside any message

    with json_logging():
        asyncio.run(scenario())

    assert (most > 1) == (prefetch > 1), f"at most {most} handled at once"
    lines = json_lines(capfd.readouterr().err)
    by_event = {str(event.event_id): event for event in events}
    for name in ("received", "sending to the portal"):
        written = [line for line in lines if line.get("event") == name]
        assert sorted(line["seen"] for line in written) == sorted(by_event)
        for line in written:
            expected = identity(by_event[line["seen"]])
            assert {key: line.get(key) for key in expected} == expected
            assert line["level"] == "info"
            assert "timestamp" in line
    # Lines about no message name none: neither the consumer's own nor the test's.
    for name in ("consuming", "all done"):
        [line] = [line for line in lines if line.get("event") == name]
        assert not {"event_id", "dossier_code", "unit", "connector"} & set(line), line


def test_the_bus_own_retry_and_dead_letter_lines_carry_the_same_identity(
    vhost: str, capfd: pytest.CaptureFixture[str]
) -> None:
    event = a_status_changed()
    handler = Recorder(fail=lambda _m: TransientError("portal timed out"))

    async def scenario() -> None:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await bus.publish(event)
            await eventually(lambda: len(handler.seen) == 3, what="three attempts")
            await asyncio.sleep(0.2)

    with json_logging():
        asyncio.run(scenario())

    lines = json_lines(capfd.readouterr().err)
    failures = [line for line in lines if line.get("event") == "message failed, will retry"]
    dead = [line for line in lines if line.get("event") == "message dead-lettered"]
    assert [line["attempt"] for line in failures] == [1, 2]
    assert [line["attempt"] for line in dead] == [3]
    for line in failures + dead:
        assert {key: line.get(key) for key in identity(event)} == identity(event)
        assert line["reason"] == "transient"
