"""Publishing: the bus's event publisher against a raw pipelined-confirm client.

Both publish the same ~1 KB persistent events to the bus's own topology (applied in a
throwaway virtual host), so the broker routes each to the portal.sync quorum queue and the
dossier.audit stream, as in production:

raw: pika publishing the very messages the bus produces (same bytes, properties, headers
and signatures, built beforehand) with up to 1000 unconfirmed, and nothing else.
bus: for each event's JSON (as a connector's outbox holds it), validate it against the
contract, sign it, and publish it through `EventPublisher`, until all are confirmed.

Rounds alternate between the two; the medians are reported.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from argparse import ArgumentParser, Namespace
from typing import Any

from bench.broker import amqp_url, bodies, prebuilt, raw_publish, scratch_vhost
from bus.broker import Connection
from bus.declarations import apply_topology
from bus.publisher import EventPublisher, Publisher, event_message
from bus.settings import Settings
from bus.signing import Signer
from bus.topology import EVENTS_EXCHANGE, SYNC_QUEUE, routing_key, topology
from schemas import decode_event


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=1000)


async def _empty_sync_queue(connection: Connection) -> None:
    channel = await connection.channel()
    await channel.purge(SYNC_QUEUE)
    await channel.close()


async def _bus_publish(connection: Connection, payloads: list[bytes], window: int) -> float:
    publisher = Publisher(connection, window=window)
    events_out = EventPublisher(publisher, SIGNER)
    await connection.wait_open()
    started = time.perf_counter()
    confirmations = [await events_out.send_body(body) for body in payloads]
    await publisher.flush()
    elapsed = time.perf_counter() - started
    refused = [c.exception() for c in confirmations if c.exception() is not None]
    assert not refused, f"{len(refused)} publishes were refused, e.g. {refused[0]}"
    return elapsed


SIGNER = Signer("bench", "hmac-sha256", b"k" * 32)


async def _run(options: Namespace) -> dict[str, Any]:
    payloads = bodies(options.events)
    identical = prebuilt([event_message(decode_event(body), SIGNER, body) for body in payloads])
    key = routing_key("H29", "status_changed")
    with scratch_vhost(amqp_url()) as url:
        connection = Connection(url, name="bench-publish")
        await connection.start(timeout=10)
        await apply_topology(connection, topology(Settings()))
        raw_times, bus_times = [], []
        for _ in range(options.rounds):
            await _empty_sync_queue(connection)
            raw_times.append(
                await raw_publish(url, EVENTS_EXCHANGE, key, identical, options.window)
            )
            await _empty_sync_queue(connection)
            bus_times.append(await _bus_publish(connection, payloads, options.window))
        await connection.close()
    raw_eps = options.events / statistics.median(raw_times)
    bus_eps = options.events / statistics.median(bus_times)
    return {
        "benchmark": "publish",
        "events": options.events,
        "event_bytes": round(statistics.mean(len(b) for b in payloads)),
        "raw_eps": round(raw_eps),
        "bus_eps": round(bus_eps),
        "ratio": round(bus_eps / raw_eps, 3),
        "rounds": options.rounds,
        "window": options.window,
        "cores": os.cpu_count(),
    }


def run(options: Namespace) -> dict[str, Any]:
    return asyncio.run(_run(options))


def describe(result: dict[str, Any]) -> str:
    return (
        f"publish: bus {result['bus_eps']:,} events/s vs raw {result['raw_eps']:,}/s "
        f"(ratio {result['ratio']}), {result['events']:,} x {result['event_bytes']} B, "
        f"median of {result['rounds']} rounds, {result['cores']} cores"
    )
