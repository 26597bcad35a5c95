"""The consumer under faults: the broker restarting, connections cut by the broker, and a
SIGTERM from a deployment. Nothing may be lost; the consumer comes back by itself.

These tests stop the local broker or cut its connections (the `broker_control` fixture
always leaves the broker running), so they need rabbitmqctl on this machine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from consumer_support import Recorder, bus_in, consuming, depth, eventually, fast_settings

from broker import BrokerControl
from bus.broker import Channel, Connection
from bus.topology import DEAD_LETTER_QUEUE, SYNC_QUEUE
from factories import a_status_changed

REPO = Path(__file__).resolve().parents[2]
RESUME_WITHIN = 10.0


def vhost_name(url: str) -> str:
    return unquote(urlsplit(url).path.removeprefix("/"))


def restart_the_broker(control: BrokerControl, url: str) -> None:
    control.stop_app()
    control.start_app()


def cut_every_connection(control: BrokerControl, url: str) -> None:
    # Every connection of the test's virtual host; tests running alongside on the same
    # broker keep theirs.
    control.run("close_all_connections", "-p", vhost_name(url), "test: forced close")


@pytest.mark.parametrize(
    "fault", [restart_the_broker, cut_every_connection], ids=["broker-restart", "connections-cut"]
)
def test_a_running_consumer_resumes_by_itself_after_a_broker_fault_and_loses_nothing(
    vhost: str,
    broker_control: BrokerControl,
    fault: Callable[[BrokerControl, str], None],
) -> None:
    before = [a_status_changed(seq=n) for n in range(1, 201)]
    after = [a_status_changed(seq=n) for n in range(201, 251)]
    # Slow enough that most of `before` still waits in the queue when the fault hits.
    handler = Recorder(delay=0.05)

    async def scenario() -> tuple[float, int, bool]:
        async with (
            bus_in(vhost, fast_settings()) as bus,
            consuming(bus, handler, prefetch=5) as [worker],
        ):
            await bus.publish(*before)
            await eventually(lambda: len(handler.seen) >= 20, what="the consumer to start")
            reconnects = reopenings(worker.connection)
            await asyncio.sleep(0.1)
            hit = time.monotonic()
            await asyncio.to_thread(fault, broker_control, vhost)
            back = time.monotonic()
            await bus.publish(*after)  # the publisher has reconnected too
            everything = {str(event.event_id) for event in before + after}
            await eventually(
                lambda: everything <= set(handler.event_ids()), timeout=30, what="every event"
            )
            resumed = min(t for t in handler.times if t >= back) - back
            await eventually(lambda: _empty(vhost), what="portal.sync drained")
            return resumed, await depth(vhost, DEAD_LETTER_QUEUE), any(t > hit for t in reconnects)

    resumed, dead, reconnected = asyncio.run(scenario())

    assert resumed < RESUME_WITHIN, f"resumed {resumed:.1f} s after the broker came back"
    assert dead == 0
    assert reconnected, "the fault never reached the consumer's connection"
    assert len(set(handler.event_ids())) == len(before) + len(after)


def reopenings(connection: Connection) -> list[float]:
    """When `connection` opens channels for its listeners again: once per reconnect."""
    times: list[float] = []

    async def note(channel: Channel) -> None:
        times.append(time.monotonic())
        await channel.close()

    connection.on_open(note)
    return times


async def _empty(url: str) -> bool:
    return await depth(url, SYNC_QUEUE) == 0


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys

    from bus.broker import Connection
    from bus.consumer import Consumer

    url, report = sys.argv[1], sys.argv[2]


    async def slow(message):
        await asyncio.sleep(0.05)


    async def main():
        connection = Connection(url, name="sigterm-test")
        consumer = Consumer(connection, "portal.sync", slow, prefetch=20)
        await connection.start(timeout=10)
        consumer.stop_on_signals()
        print("READY", flush=True)
        await consumer.run()
        await connection.close()
        with open(report, "w") as file:
            file.write(str(consumer.handled))


    asyncio.run(main())
    """
)


def test_sigterm_stops_a_consumer_cleanly_with_every_message_either_acked_or_back_in_the_queue(
    vhost: str, tmp_path: Path
) -> None:
    total = 1000  # about 2.5 s of work at 20 in flight and 50 ms each
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER_SCRIPT)
    report = tmp_path / "handled"

    async def publish() -> None:
        async with bus_in(vhost) as bus:
            await bus.publish(*[a_status_changed(seq=n) for n in range(1, total + 1)])

    asyncio.run(publish())
    process = subprocess.Popen(
        [sys.executable, str(script), vhost, str(report)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        while "READY" not in (line := process.stdout.readline()):
            assert line, f"the consumer died: {process.communicate()[1]}"
        time.sleep(0.5)  # mid-way: about a fifth of the messages handled
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, errors = process.communicate(timeout=15)
        exited_after = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, errors
    assert exited_after < 5
    handled = int(report.read_text())
    assert 0 < handled < total
    # The in-flight messages were finished and acked, or given back: none is lost, none is
    # both acked and still queued.
    remaining = asyncio.run(_settled_depth(vhost))
    assert handled + remaining == total


async def _settled_depth(url: str) -> int:
    # Messages handed back when the channel closed may take a moment to count as ready.
    last = -1
    for _ in range(20):
        now = await depth(url, SYNC_QUEUE)
        if now == last:
            return now
        last = now
        await asyncio.sleep(0.1)
    return last
