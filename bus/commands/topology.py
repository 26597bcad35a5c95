"""`bus topology`: the exchanges, queues and bindings the bus needs on the broker."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bus.declarations import Declared
    from bus.errors import TopologyMismatch
    from bus.migration import Migration
    from bus.settings import Settings


class Busy(Exception):
    """The sync queues to migrate are being consumed."""


@click.group()
def topology() -> None:
    """The broker topology: dossier.events, portal.sync (or its BUS_SYNC_SHARDS shards), the
    retry and dead-letter queues, and the dossier.audit stream."""


@topology.command("apply")
def apply() -> None:
    """Declare everything; safe to run again. A queue that exists with other arguments is
    reported with the argument that differs, and the command exits with status 1.

    When BUS_SYNC_SHARDS changed (1 to S shards, S to another count, or back to 1), what the
    old sync queues hold is moved into the new ones, nothing lost, and the old ones are
    deleted once empty. Stop the sync service first: while a sync worker consumes a queue
    that would be emptied or re-hashed, nothing is changed, and the command exits with
    status 1."""
    from bus.broker import BrokerUnavailable
    from bus.settings import Settings
    from bus.tls import BrokerTlsError

    settings = Settings()
    try:
        declared, mismatches, migration = asyncio.run(_apply(settings))
    except (BrokerUnavailable, BrokerTlsError, Busy) as error:
        raise click.ClickException(str(error)) from None
    for item in declared:
        click.echo(f"  {item.kind:<8} {item.name}  {item.detail}")
    for mismatch in mismatches:
        click.secho(f"  mismatch {mismatch}", fg="red", err=True)
    for step in migration.steps if migration is not None else ():
        click.secho(f"  {step}", fg="yellow" if step.action == "kept" else None)
    summary = f"{len(declared)} declared, {len(mismatches)} mismatched"
    if migration is not None and migration.steps:
        summary += f"; {migration}"
    if mismatches or (migration is not None and migration.kept):
        raise click.ClickException(summary)
    click.echo(summary)


async def _apply(
    settings: Settings,
) -> tuple[list[Declared], list[TopologyMismatch], Migration | None]:
    from bus.broker import Connection
    from bus.declarations import apply_topology
    from bus.migration import migrate, survey
    from bus.topology import topology as wanted

    connection = Connection.from_settings(settings, name="bus-topology")
    await connection.start(timeout=10)
    try:
        before = await survey(connection)
        if busy := before.busy(settings):
            raise Busy(
                f"nothing changed: sync workers consume {', '.join(busy)}, which"
                f" BUS_SYNC_SHARDS={settings.sync_shards} would empty or re-hash; stop the"
                " sync service, run `bus topology apply` again, then start it"
            )
        declared, mismatches = await apply_topology(connection, wanted(settings))
        if mismatches:  # the wanted layout is not all there: nothing moves into it
            return declared, mismatches, None
        return declared, mismatches, await migrate(connection, settings, before)
    finally:
        await connection.close()
