"""The `bus` command: one group, each area of work a subcommand group of its own.

Each area's commands live in their own module under `bus/commands/` and are registered here
with `main.add_command(...)`, so `bus --help` lists everything in one place. Commands import what
they use inside their body, which keeps `bus --help` quick however heavy the runtime grows.
"""

from __future__ import annotations

from importlib import metadata

import click

from bus.commands.connector import connector
from bus.commands.console import console
from bus.commands.demo import demo
from bus.commands.dlq import dlq
from bus.commands.ops import history_replay, status
from bus.commands.portal_sim import portal_sim
from bus.commands.provision import provision
from bus.commands.schema import schema
from bus.commands.sync import reconcile, sync
from bus.commands.topology import topology


def _version() -> str:
    try:
        return metadata.version("dossier-bus")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "-V", "--version", prog_name="dossier-bus")
def main() -> None:
    """dossier-bus: carries dossier events from ministry and provincial one-stop systems
    to the National Public Service Portal (Cổng Dịch vụ công quốc gia) over RabbitMQ.

    Connectors publish each dossier change as a signed event; the bus delivers it to the
    portal without loss, duplicates or stale overwrites, and dead-letters what it cannot
    deliver, with the reason.
    """


main.add_command(connector)
main.add_command(portal_sim)
main.add_command(schema)
main.add_command(topology)
main.add_command(sync)
main.add_command(reconcile)
main.add_command(demo)
main.add_command(console)
main.add_command(status)
main.add_command(dlq)
main.add_command(history_replay)
main.add_command(provision)
