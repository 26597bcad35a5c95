"""`bus schema`: the dossier contract for connectors written in other languages."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def schema() -> None:
    """The dossier contract, for connectors written in other languages."""


@schema.command("export", short_help="Write the JSON Schemas of every event type into DIRECTORY.")
@click.argument("directory", type=click.Path(file_okay=False, writable=True, path_type=Path))
def export_schemas(directory: Path) -> None:
    """Write one JSON Schema (draft 2020-12) per event type, plus envelope.schema.json,
    into DIRECTORY (created if missing)."""
    from schemas.events import SCHEMA_VERSION
    from schemas.export import export

    written = export(directory)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"{len(written)} JSON Schemas of contract version {SCHEMA_VERSION} in {directory}")
