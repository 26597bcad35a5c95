"""`bus connector validate|run|rejects CONFIG`: what a provincial or ministry IT team runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from connectors.config import ConnectorConfig
    from connectors.runner import Connector
    from connectors.source import Source

SAMPLE_SIZE = 50
config_argument = click.argument(
    "config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path)
)


@click.group()
def connector() -> None:
    """Connectors: read a local dossier system and publish its dossiers as events."""


@connector.command()
@config_argument
def validate(config_path: Path) -> None:
    """Check CONFIG before going live: the file, the source's connectivity, the signing key,
    and the mapping tried on a sample of real records. One line per finding."""
    from bus.settings import Settings
    from connectors.config import ConfigError, load_config, make_source
    from connectors.runner import SigningKeyMissing, signer_for

    problems = 0

    def report(ok: bool, line: str) -> None:
        nonlocal problems
        problems += not ok
        click.echo(f"{'ok  ' if ok else 'FAIL'} {line}")

    try:
        config = load_config(config_path)
        source = make_source(config, config_path)
    except ConfigError as error:
        for line in error.problems:
            report(False, f"config: {line}")
        raise SystemExit(1) from None
    report(True, f"config: {config.connector.kind} connector {config.connector.name!r} "
                 f"for {config.connector.agency} (unit {config.unit})")  # fmt: skip
    try:
        signer_for(config, Settings())
        report(True, "signing key: present")
    except SigningKeyMissing as error:
        report(False, f"signing key: {error}")
    for ok, line in asyncio.run(_try_source(config, source)):
        report(ok, line)
    if problems:
        click.echo(f"{problems} problem(s): fix them before `bus connector run`.")
        raise SystemExit(1)
    click.echo("ready: `bus connector run " + str(config_path) + "`")


async def _try_source(config: ConnectorConfig, source: Source) -> list[tuple[bool, str]]:
    from connectors.mapping import MappingError, RecordMapping
    from connectors.source import PollSource, SourceError

    lines: list[tuple[bool, str]] = []
    try:
        await source.open()
        await source.check()
    except SourceError as error:
        return [(False, f"source: {error}")]
    try:
        lines.append((True, f"source: {source.describe()} answers"))
        if not isinstance(source, PollSource):
            lines.append((True, "mapping: checked on the first pushes (a push source has no "
                                "records to sample); refused ones go to the rejects"))  # fmt: skip
            return lines
        try:
            records = await source.sample(SAMPLE_SIZE)
        except SourceError as error:
            return [*lines, (False, f"source: {error}")]
        mapping = RecordMapping(config)
        reasons: Counter[str] = Counter()
        for record in records:
            try:
                mapping.event(record, None)
            except MappingError as error:
                reasons[str(error)] += 1
        if not records:
            lines.append((True, "mapping: the source has no records yet to try it on"))
        for reason, count in reasons.most_common():
            lines.append((False, f"mapping: {reason} ({count} of {len(records)} records)"))
        if not reasons and records:
            lines.append((True, f"mapping: {len(records)} sample records map to valid events"))
        return lines
    finally:
        await source.close()


@connector.command()
@config_argument
@click.option(
    "--until-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop once the source had nothing new and the outbox was empty this long.",
)
def run(config_path: Path, until_idle: float | None) -> None:
    """Run the connector: read, map, keep in the outbox, publish. Stops on SIGTERM."""
    from bus.logging import configure_logging
    from bus.settings import Settings
    from connectors.config import ConfigError, load_config
    from connectors.runner import Connector, SigningKeyMissing

    settings = Settings()
    configure_logging(settings)
    try:
        connector = Connector(load_config(config_path), settings)
    except (ConfigError, SigningKeyMissing) as error:
        raise click.ClickException(str(error)) from None
    asyncio.run(_run(connector, until_idle))
    click.echo(
        f"{connector.name}: {connector.read} records read, {connector.committed} events "
        f"published, {connector.skipped} already sent, {connector.rejected} rejected"
    )


async def _run(connector: Connector, until_idle: float | None) -> None:
    import signal

    task = asyncio.create_task(connector.run(until_idle=until_idle))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):  # SIGTERM: a clean stop
        await task


@connector.command()
@config_argument
@click.option("--limit", type=int, default=50, show_default=True, help="Newest first.")
@click.option("--dossier", default=None, help="Only this dossier code.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with records.")
def rejects(config_path: Path, limit: int, dossier: str | None, as_json: bool) -> None:
    """List the records the connector refused, with the reason (personal data masked)."""
    from connectors.config import ConfigError, load_config
    from connectors.outbox import Outbox

    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    outbox = Outbox(config.connector.state_dir)
    try:
        found = outbox.rejects(limit, dossier)
        total = outbox.reject_count()
    finally:
        outbox.close()
    if as_json:
        for reject in found:
            click.echo(json.dumps({**reject.__dict__}, ensure_ascii=False))
        return
    if not found:
        click.echo(f"{config.connector.name}: no rejected records")
        return
    click.echo(f"{config.connector.name}: {total} rejected, newest {len(found)} shown")
    for reject in found:
        at = datetime.fromtimestamp(reject.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{at}  {reject.ref}  {reject.dossier_code or '-'}\n    {reject.reason}")
