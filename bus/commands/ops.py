"""`bus status` and `bus replay`, and what every operator command shares (`bus dlq` is in
`dlq.py`).

Each acts as a national operator named after the login running it, and every replay or
discard is written to the audit log with that name.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

if TYPE_CHECKING:
    from bus.ops import DeadLetters, Operator
    from bus.ops.history import Resent
    from bus.settings import Settings

T = TypeVar("T")
MOMENT = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"])


def command_settings() -> Settings:
    from bus.logging import configure_logging
    from bus.settings import Settings

    settings = Settings()
    configure_logging(settings)
    return settings


def run_command(work: Coroutine[Any, Any, T]) -> T:
    """Run the command's work; what goes wrong is one line and exit status 1."""
    from bus.errors import BusError
    from bus.management import ManagementError

    try:
        return asyncio.run(work)
    except (BusError, ManagementError) as error:
        raise click.ClickException(str(error)) from None


@contextlib.asynccontextmanager
async def opened_dead_letters(settings: Settings, *, collect: bool) -> AsyncIterator[DeadLetters]:
    from bus.broker import Connection
    from bus.ops import DeadLetters, OpsStore

    connection = Connection.from_settings(settings, name="bus-ops")
    store = OpsStore(settings.ops_url.get_secret_value())
    try:
        await connection.start(timeout=10)
        dead_letters = DeadLetters(store, connection, settings)
        if collect:
            await dead_letters.collect()
        yield dead_letters
    finally:
        await connection.close()
        store.close()


def login_operator() -> Operator:
    from bus.ops import Operator

    return Operator.from_login()


def echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode())


def shortened(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---- bus status -----------------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.option(
    "--heartbeats-within",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    metavar="MINUTES",
    help="How far back to look for connectors' heartbeats.",
)
def status(as_json: bool, heartbeats_within: float) -> None:
    """Queues (messages, ready, unacked, consumers, rates) and units (dead letters waiting,
    each connector's last heartbeat, outbox and rejects)."""
    from bus.ops.table import age, table

    settings = command_settings()
    within = timedelta(minutes=heartbeats_within)
    queues, units = run_command(_status(settings, login_operator(), within))
    if as_json:
        echo_json({"queues": [asdict(q) for q in queues], "units": [asdict(u) for u in units]})
        return
    click.echo("Queues")
    columns = ["queue", "type", "messages", "ready", "unacked", "consumers", "in/s", "out/s"]
    click.echo(
        table(
            columns,
            [
                [
                    q.name,
                    q.kind,
                    q.messages,
                    q.ready,
                    q.unacked,
                    q.consumers,
                    q.publish_rate,
                    q.deliver_rate,
                ]
                for q in queues
            ],
        )
    )
    now = datetime.now(UTC)
    rows: list[list[object]] = []
    for unit in units:
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(unit.dead_letters.items())) or "-"
        for index, c in enumerate(unit.connectors or [None]):
            first = index == 0
            rows.append(
                [
                    unit.unit if first else "",
                    unit.waiting if first else "",
                    reasons if first else "",
                    c.connector if c else None,
                    age(c.age(now)) if c else None,
                    c.outbox if c else None,
                    c.rejects if c else None,
                ]
            )
    click.echo("\nUnits")
    headers = ["unit", "dead letters", "reasons", "connector", "heard", "outbox", "rejects"]
    click.echo(table(headers, rows) if rows else "(no dead letters, no heartbeats)")


async def _status(settings: Settings, operator: Operator, within: timedelta) -> tuple[Any, Any]:
    from bus.management import Management, management_url_for, vhost_of
    from bus.ops.status import latest_heartbeats, queue_status, unit_status

    amqp_url = settings.amqp_url.get_secret_value()
    async with opened_dead_letters(settings, collect=True) as letters:
        beats = await latest_heartbeats(letters.connection, within=within)
        counts = letters.counts(operator)
    with Management(management_url_for(amqp_url)) as api:
        raw = await asyncio.to_thread(api.queues, vhost_of(amqp_url))
    return queue_status(raw, settings), unit_status(counts, beats.values(), operator.units)


# ---- bus replay -----------------------------------------------------------------------------


@click.command("replay")
@click.option("--unit", required=True, help="Level-1 unit whose history to re-send, e.g. H29.")
@click.option("--since", required=True, type=MOMENT, help="From this moment (UTC unless said).")
@click.option("--until", type=MOMENT, default=None, help="Only events that occurred up to it.")
@click.option("--json", "as_json", is_flag=True)
def history_replay(unit: str, since: datetime, until: datetime | None, as_json: bool) -> None:
    """Re-send UNIT's events from the dossier.audit stream since a moment to portal.sync;
    the sync service's version guard drops what the portal already has."""
    settings = command_settings()
    result = run_command(_history(settings, unit, _aware(since), until and _aware(until)))
    if as_json:
        echo_json(asdict(result))
        return
    click.echo(str(result))
    if result.failed:
        raise click.ClickException(f"{result.failed} events were not confirmed by the broker")


async def _history(
    settings: Settings, unit: str, since: datetime, until: datetime | None
) -> Resent:
    from bus.broker import Connection
    from bus.demo.progress import Bar
    from bus.ops import OpsStore
    from bus.ops.history import resend_history
    from bus.topology import sync_route

    connection = Connection.from_settings(settings, name="bus-replay")
    bars: list[Bar] = []

    def progress(result: Resent) -> None:
        if not bars:
            bars.append(Bar(sys.stderr, "replay", result.total, "read"))
        bars[0].show(result.read, f", {result.sent} re-sent")

    with OpsStore(settings.ops_url.get_secret_value()) as store:
        await connection.start(timeout=10)
        try:
            result = await resend_history(
                connection, login_operator(), unit, since, until=until, store=store,
                progress=progress, window=settings.publish_window, route=sync_route(settings),
            )  # fmt: skip
        finally:
            await connection.close()
    if bars:
        bars[0].finish(result.read, f", {result.sent} re-sent")
    return result
