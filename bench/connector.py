"""A connector end to end: the SQL connector moving a database's dossiers to confirmed
publish through its durable outbox, against a raw pipelined-confirm client.

The source is the sample ministry database (`connectors/sample/database.py`, table ho_so,
one current row per dossier) with `--events` dossiers, each the final state of a sample
lifecycle, so each row is one event. The connector is the example `sql_poll.toml`, pointed at
that database and a fresh state folder. Both sides publish to the bus's own topology in a
throwaway virtual host: the broker routes each message to the portal.sync quorum queue and
the dossier.audit stream, as in production.

raw: pika publishing the very messages the connector's relay produces (same bytes,
     properties, headers and signatures, built beforehand) with up to 1000 unconfirmed.
bus: from the first poll until every row is read, mapped, committed to the outbox with the
     cursor, published, confirmed and deleted from the outbox: the connector's own reading
     loop and relay, on one event loop, as `bus connector run` has them.

Building the database and the raw messages is outside both clocks, and so is opening the
connection and the source: start-up, not throughput.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import statistics
import tempfile
import time
from argparse import ArgumentParser, Namespace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pika

import connectors
from bench.broker import amqp_url, prebuilt, raw_publish, scratch_vhost
from bench.cpu import CpuMeter, broker_pid
from bus import runtime
from bus.broker import Connection
from bus.declarations import apply_topology
from bus.logging import configure_logging
from bus.message import Outgoing
from bus.publisher import Publisher, event_message
from bus.settings import Settings
from bus.signing import Signer
from bus.topology import EVENTS_EXCHANGE, SYNC_QUEUE, topology
from connectors.config import ConnectorConfig, load_config
from connectors.mapping import RecordMapping
from connectors.relay import Relay
from connectors.runner import Connector, signer_for
from connectors.sample.database import LocalDatabase
from connectors.sample.lifecycle import lifecycles
from connectors.sample.local import to_local

AGENCY: Final = "000.00.01.G01"  # the example config's agency
START: Final = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)
EXAMPLE: Final = Path(connectors.__file__).parent / "examples" / "sql_poll.toml"
SECRET: Final = b"bench-connector-signing-key-0123"  # 32 bytes, HMAC-SHA256
WINDOW: Final = 1000  # raw client's unconfirmed publishes: the bus's default publish_window
DONE_CHECK: Final = 0.002  # seconds between checks that the relay has caught up
STALLED: Final = 60.0  # seconds without a confirmed row: the relay is stuck, not slow


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=50_000, help="rows (dossiers) to move")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rows per poll (default: the example's)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="raw and bus runs, alternating")


def _records(count: int) -> list[dict[str, Any]]:
    """`count` dossiers' rows as the local system holds them once every lifecycle has run.

    The rows, in the order, of `LocalSystem(...).advance(all)` then `.records()`, without
    rendering the ~5 earlier versions of each row that the table would overwrite anyway
    (about five times the setup): each row's cap_nhat_luc is its last step's moment, a
    microsecond later when two share a second.
    """
    finals = sorted(
        (run[-1] for run in lifecycles(AGENCY, count, seed=1, start=START)),
        key=lambda event: event.occurred_at,
    )
    rows = []
    last: datetime | None = None
    for event in finals:
        moment = event.occurred_at
        if last is not None and moment <= last:
            moment = last + timedelta(microseconds=1)
        last = moment
        rows.append(to_local(event.payload.dossier, version=event.seq, updated_at=moment))
    return rows


def _config(database_url: str, state_dir: Path, batch_size: int | None) -> ConnectorConfig:
    """The example config, reading `database_url` with its state in `state_dir`."""
    config = load_config(EXAMPLE)
    update: dict[str, Any] = {"state_dir": state_dir}
    if batch_size is not None:
        update["batch_size"] = batch_size
    table = config.connector.model_copy(update=update)
    source = {**config.source, "url": database_url}
    return config.model_copy(update={"connector": table, "source": source})


def _settings(url: str) -> Settings:
    return Settings(
        amqp_url=url,
        signing_key=base64.b64encode(SECRET).decode(),
        signing_key_id="bench",
        log_level="warning",
        log_format="json",
    )


def _relayed(
    config: ConnectorConfig, settings: Settings, records: list[dict[str, Any]]
) -> list[Outgoing]:
    """What the relay will publish for these rows, built as the connector builds it: the
    mapping's event, stored as JSON, signed on its way out."""
    mapping = RecordMapping(config)
    signer: Signer | None = signer_for(config, settings)
    # Every dossier is new to the connector, so no previous status.
    return [event_message(mapping.event(record, None), signer) for record in records]


async def _empty_sync_queue(connection: Connection) -> None:
    """Each run starts with portal.sync empty, so neither pays for the other's backlog."""
    channel = await connection.channel()
    await channel.purge(SYNC_QUEUE)
    await channel.close()


async def _bus_run(config: ConnectorConfig, settings: Settings) -> tuple[float, Connector]:
    """Seconds from the first poll until every row is confirmed and out of the outbox."""
    connector = Connector(config, settings)
    connection = Connection.from_settings(settings, name="bench-connector")
    await connection.start(timeout=10)
    publisher = Publisher(connection, window=settings.publish_window)
    relay = Relay(connector.outbox, publisher, connector.signer, connector.name, config.unit)
    await connector.source.open()
    await connection.wait_open()
    runtime.settle()  # as `Connector.run` does once started
    relaying = asyncio.create_task(relay.run(), name="relay")
    try:
        started = time.perf_counter()
        # The runner's reading loop: poll again at once while pages come full; the relay
        # is woken after each commit, as `Connector.ingest` does when the runner owns it.
        # Heartbeats (one message every 30 s) are left out: noise at this scale.
        while True:
            batch = await connector.poll_once()
            relay.wake()
            if batch.done or not batch.records:
                break
        progress, moved = relay.published, time.monotonic()
        while relay.published < connector.committed:
            if relaying.done():
                relaying.result()  # the relay stopped: say why
            if relay.published != progress:
                progress, moved = relay.published, time.monotonic()
            elif time.monotonic() - moved > STALLED:
                # A refused publish is logged and retried forever: a benchmark must end.
                raise RuntimeError(f"relay stalled at {progress} of {connector.committed}")
            await asyncio.sleep(DONE_CHECK)
        elapsed = time.perf_counter() - started
    finally:
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
        await connector.source.close()
        await connection.close()
    left = connector.outbox.size()
    connector.outbox.close()
    assert left == 0, f"{left} rows still in the outbox"
    return elapsed, connector


async def _run(options: Namespace) -> dict[str, Any]:
    configure_logging(Settings(log_level="warning", log_format="json"))  # stderr, not stdout
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        database_url = f"sqlite:///{folder / 'g01.sqlite3'}"
        records = _records(options.events)
        database = LocalDatabase(database_url)
        database.create_table()
        database.write(records)
        database.dispose()
        with scratch_vhost(amqp_url()) as url:
            settings = _settings(url)
            probe = _config(database_url, folder / "probe", options.batch_size)
            messages = _relayed(probe, settings, records)
            del records
            keys = {message.routing_key for message in messages}
            assert len(keys) == 1, f"raw_publish takes one routing key, the rows need {keys}"
            (key,) = keys
            identical: list[tuple[bytes, pika.BasicProperties]] = prebuilt(messages)
            body_bytes = round(statistics.mean(len(message.body) for message in messages))
            del messages
            # The benchmark's own data is not the connector's heap: out of the collector's
            # sight, so that neither run pays for scanning it.
            gc.collect()
            gc.freeze()
            connection = Connection(url, name="bench-connector-setup")
            await connection.start(timeout=10)
            await apply_topology(connection, topology(Settings()))
            raw_times, bus_times = [], []
            events = read = 0
            broker = broker_pid(url)
            raw_cpu, bus_cpu = CpuMeter({"broker": broker}), CpuMeter({"broker": broker})
            for round_ in range(options.rounds):
                await _empty_sync_queue(connection)
                with raw_cpu.measure():
                    raw_times.append(
                        await raw_publish(url, EVENTS_EXCHANGE, key, identical, WINDOW)
                    )
                await _empty_sync_queue(connection)
                config = _config(database_url, folder / f"state-{round_}", options.batch_size)
                with bus_cpu.measure():
                    elapsed, connector = await _bus_run(config, settings)
                bus_times.append(elapsed)
                events, read = connector.committed, connector.read
                assert events == len(identical), f"{events} events of {len(identical)} rows"
            await connection.close()
    raw_eps = len(identical) / statistics.median(raw_times)
    bus_eps = events / statistics.median(bus_times)
    return {
        "benchmark": "connector",
        "events": events,
        "rows_read": read,  # a page starts at its predecessor's last row (cursor >=)
        "event_bytes": body_bytes,
        "raw_eps": round(raw_eps),
        "bus_eps": round(bus_eps),
        "ratio": round(bus_eps / raw_eps, 3),
        "raw_s": round(statistics.median(raw_times), 3),
        "bus_s": round(statistics.median(bus_times), 3),
        "batch_size": probe.connector.batch_size,
        "window": WINDOW,
        "rounds": options.rounds,
        "cores": os.cpu_count(),
        # The last round's CPU in µs per event; both clients run in this process.
        "cpu_us_per_event": {
            "raw": raw_cpu.per_event(events, {"this process": "client", "broker": "broker"}),
            "bus": bus_cpu.per_event(events, {"this process": "connector", "broker": "broker"}),
        },
    }


def run(options: Namespace) -> dict[str, Any]:
    return asyncio.run(_run(options))


def describe(result: dict[str, Any]) -> str:
    return (
        f"connector: sql_poll to confirmed publish {result['bus_eps']:,} events/s vs raw "
        f"{result['raw_eps']:,}/s (ratio {result['ratio']}), {result['events']:,} x "
        f"{result['event_bytes']} B, batch {result['batch_size']}, {result['cores']} cores; "
        f"CPU per event {result['cpu_us_per_event']}"
    )
