"""`bus sync run` and `bus reconcile`: keep the national portal in step, and prove it is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bus.settings import Settings
    from bus.sync.reconcile import Summary


@click.group()
def sync() -> None:
    """The sync service: events from portal.sync (or its shards) to the national portal."""


def _worker(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    """I/W, 1 <= I <= W, as (index from 0, count)."""
    if value is None:
        return None
    index, _, count = value.partition("/")
    try:
        number, workers = int(index), int(count)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not I/W, e.g. 2/3") from None
    if not 1 <= number <= workers:
        raise click.BadParameter(f"{value!r}: I counts from 1 to W")
    return number - 1, workers


@sync.command("run")
@click.option(
    "--until-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop once nothing arrived for this long (batch runs and tests); else run until SIGTERM.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of /metrics, /healthz and /readyz (0: any free one). Default: BUS_METRICS_PORT,"
    " else 9101 when it is free.",
)
@click.option(
    "--worker",
    callback=_worker,
    metavar="I/W",
    default=None,
    help="Run as worker I of W sharing the BUS_SYNC_SHARDS shards: the active consumer of"
    " shards s with s % W == I-1, standing by for the others. Default: BUS_SYNC_WORKER_INDEX"
    " and BUS_SYNC_WORKERS (one worker).",
)
def run(until_idle: float | None, metrics_port: int | None, worker: tuple[int, int] | None) -> None:
    """Consume portal.sync, or the sync shards, and apply every newer event to the portal,
    in order, in batches."""
    from bus.logging import configure_logging
    from bus.probes import SYNC_METRICS_PORT, service_port
    from bus.settings import Settings
    from bus.sync.runner import UnsignedRefused, WorkersRefused, check_workers, run_sync
    from bus.tls import BrokerTlsError

    settings = Settings()
    if worker is not None:
        index, workers = worker
        settings = settings.model_copy(update={"sync_worker_index": index, "sync_workers": workers})
    configure_logging(settings)
    try:
        check_workers(settings)
    except WorkersRefused as error:
        raise click.ClickException(str(error)) from None
    port = service_port(settings, metrics_port, SYNC_METRICS_PORT)
    settings = settings.model_copy(update={"metrics_port": port})
    try:
        asyncio.run(run_sync(settings, until_idle=until_idle))
    except (UnsignedRefused, BrokerTlsError) as error:
        raise click.ClickException(str(error)) from None


@click.command()
@click.option("--unit", required=True, help="Level-1 unit to check, e.g. H29 or G01.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
    default=None,
    help="Only dossiers applied at or after this moment (UTC unless it says otherwise).",
)
def reconcile(unit: str, since: datetime | None) -> None:
    """Compare what the bus applied for UNIT with what the portal holds (TraCuuHoSo), and
    re-queue only the dossiers that are missing there or different."""
    from bus.broker import BrokerUnavailable
    from bus.logging import configure_logging
    from bus.settings import Settings
    from bus.tls import BrokerTlsError

    settings = Settings()
    configure_logging(settings)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        summary = asyncio.run(_reconcile(settings, unit, since))
    except (BrokerUnavailable, BrokerTlsError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(str(summary))


async def _reconcile(settings: Settings, unit: str, since: datetime | None) -> Summary:
    from bus.broker import Connection
    from bus.publisher import Publisher
    from bus.sync.reconcile import reconcile as run_reconcile
    from bus.sync.runner import portal_client
    from bus.sync.store import open_store
    from bus.topology import sync_route

    connection = Connection.from_settings(settings, name="bus-reconcile")
    publisher = Publisher(connection, window=settings.publish_window)
    await connection.start(timeout=10)
    last_shown = 0

    def show(summary: Summary) -> None:
        nonlocal last_shown
        if summary.checked - last_shown >= 1000:
            last_shown = summary.checked
            click.echo(f"  … {summary}", err=True)

    try:
        async with (
            open_store(settings.state_url.get_secret_value()) as store,
            portal_client(settings) as portal,
        ):
            return await run_reconcile(
                store,
                portal,
                publisher,
                unit,
                route=sync_route(settings),
                since=since,
                concurrency=settings.sync_concurrency,
                progress=show,
            )
    finally:
        await connection.close()
