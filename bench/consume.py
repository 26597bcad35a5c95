"""Consuming: the bus consumer with its full middleware chain against a raw consumer.

raw: pika consuming the same signed ~1 KB events with the same prefetch, acking each.
bus: `Consumer` with the standard chain (log context, metrics, retries, size limit,
signature check, contract decode, dedup) and a handler that does nothing. The queue is
filled before each timed drain; rounds alternate and the medians are reported.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from argparse import ArgumentParser, Namespace
from typing import Any

from bench.broker import amqp_url, events, raw_consume, scratch_vhost
from bus.broker import Connection
from bus.consumer import Consumer
from bus.message import Message
from bus.middleware import standard
from bus.publisher import EventPublisher, Publisher
from bus.settings import Settings
from bus.signing import KeyRing, Signer, VerifyKey

EXCHANGE = "dossier.events"
QUEUE = "bench.work"
SECRET = b"k" * 32


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=200)


async def _fill(connection: Connection, publisher: EventPublisher, count: int) -> None:
    channel = await connection.channel()
    await channel.purge(QUEUE)
    await channel.close()
    confirmations = [await publisher.send(event) for event in events(count)]
    await asyncio.gather(*confirmations)


async def _bus_consume(url: str, count: int, prefetch: int) -> float:
    settings = Settings(prefetch=prefetch)
    keys = KeyRing([VerifyKey("bench", "igate-hcm", "hmac-sha256", SECRET)])
    connection = Connection(url, name="bench-consumer")
    handled = 0
    finished = asyncio.Event()

    async def handler(_message: Message) -> None:
        nonlocal handled
        handled += 1
        if handled == count:
            finished.set()

    consumer = Consumer(
        connection,
        QUEUE,
        handler,
        middleware=standard(QUEUE, Publisher(connection), settings, keys),
        prefetch=prefetch,
    )
    await connection.start(timeout=10)
    started = time.perf_counter()
    running = asyncio.create_task(consumer.run())
    await finished.wait()
    elapsed = time.perf_counter() - started
    consumer.stop()
    await running
    await connection.close()
    return elapsed


async def _run(options: Namespace) -> dict[str, Any]:
    with scratch_vhost(amqp_url()) as url:
        connection = Connection(url, name="bench-filler")
        publisher = EventPublisher(Publisher(connection), Signer("bench", "hmac-sha256", SECRET))
        await connection.start(timeout=10)
        channel = await connection.channel()
        await channel.declare_exchange(EXCHANGE, "topic")
        await channel.declare_queue(QUEUE, {"x-queue-type": "quorum"})
        await channel.bind(QUEUE, EXCHANGE, "#")
        await channel.close()
        raw_times, bus_times = [], []
        for _ in range(options.rounds):
            await _fill(connection, publisher, options.events)
            raw_times.append(await raw_consume(url, QUEUE, options.events, options.prefetch))
            await _fill(connection, publisher, options.events)
            bus_times.append(await _bus_consume(url, options.events, options.prefetch))
        await connection.close()
    raw_eps = options.events / statistics.median(raw_times)
    bus_eps = options.events / statistics.median(bus_times)
    return {
        "benchmark": "consume",
        "events": options.events,
        "raw_eps": round(raw_eps),
        "bus_eps": round(bus_eps),
        "ratio": round(bus_eps / raw_eps, 3),
        "rounds": options.rounds,
        "prefetch": options.prefetch,
        "cores": os.cpu_count(),
    }


def run(options: Namespace) -> dict[str, Any]:
    return asyncio.run(_run(options))


def describe(result: dict[str, Any]) -> str:
    return (
        f"consume: bus {result['bus_eps']:,} events/s vs raw {result['raw_eps']:,}/s "
        f"(ratio {result['ratio']}), {result['events']:,} events, prefetch "
        f"{result['prefetch']}, median of {result['rounds']} rounds, {result['cores']} cores"
    )
