"""`bus topology`: the exchanges, queues and bindings the bus needs on the broker."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bus.declarations import Declared
    from bus.errors import TopologyMismatch
    from bus.settings import Settings


@click.group()
def topology() -> None:
    """The broker topology: dossier.events, portal.sync, its retry and dead-letter queues, and
    the dossier.audit stream."""


@topology.command("apply")
def apply() -> None:
    """Declare everything; safe to run again. A queue that exists with other arguments is
    reported with the argument that differs, and the command exits with status 1."""
    from bus.broker import BrokerUnavailable
    from bus.settings import Settings
    from bus.tls import BrokerTlsError

    settings = Settings()
    try:
        declared, mismatches = asyncio.run(_apply(settings))
    except (BrokerUnavailable, BrokerTlsError) as error:
        raise click.ClickException(str(error)) from None
    for item in declared:
        click.echo(f"  {item.kind:<8} {item.name}  {item.detail}")
    for mismatch in mismatches:
        click.secho(f"  mismatch {mismatch}", fg="red", err=True)
    summary = f"{len(declared)} declared, {len(mismatches)} mismatched"
    if mismatches:
        raise click.ClickException(summary)
    click.echo(summary)


async def _apply(settings: Settings) -> tuple[list[Declared], list[TopologyMismatch]]:
    from bus.broker import Connection
    from bus.declarations import apply_topology
    from bus.topology import topology as wanted

    connection = Connection.from_settings(settings, name="bus-topology")
    await connection.start(timeout=10)
    try:
        return await apply_topology(connection, wanted(settings))
    finally:
        await connection.close()
