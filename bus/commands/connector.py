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
    from schemas.personal import mask_text

    problems = 0

    def report(ok: bool, line: str) -> None:
        nonlocal problems
        problems += not ok
        # A source's error may quote its records (an HTTP error page's excerpt).
        click.echo(f"{'ok  ' if ok else 'FAIL'} {mask_text(line)}")

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
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of /metrics, /healthz and /readyz (0: any free one). Default: BUS_METRICS_PORT,"
    " else 9102 when it is free (give each connector on one host its own).",
)
def run(config_path: Path, until_idle: float | None, metrics_port: int | None) -> None:
    """Run the connector: read, map, keep in the outbox, publish. Stops on SIGTERM."""
    from bus.logging import configure_logging
    from bus.probes import CONNECTOR_METRICS_PORT, service_port
    from bus.settings import Settings
    from bus.tls import BrokerTlsError
    from connectors.config import ConfigError, load_config
    from connectors.runner import Connector, SigningKeyMissing

    settings = Settings()
    configure_logging(settings)
    port = service_port(settings, metrics_port, CONNECTOR_METRICS_PORT)
    settings = settings.model_copy(update={"metrics_port": port})
    try:
        connector = Connector(load_config(config_path), settings)
        asyncio.run(_run(connector, until_idle))
    except (ConfigError, SigningKeyMissing, BrokerTlsError) as error:
        raise click.ClickException(str(error)) from None
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


@connector.command()
@config_argument
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=SAMPLE_SIZE,
    show_default=True,
    help="Records to read from the source.",
)
@click.option(
    "--records",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="A JSON array of records to run on instead (a webhook's pushes, say).",
)
@click.option(
    "--management-url",
    envvar="BUS_MANAGEMENT_URL",
    show_envvar=True,
    default=None,
    metavar="URL",
    help="The broker's management API, with the credentials of a user allowed to create a"
    " virtual host, e.g. http://admin:secret@rabbit:15672. Default: BUS_AMQP_URL's host and"
    " credentials, port 15672.",
)
def check(config_path: Path, sample: int, records: Path | None, management_url: str | None) -> None:
    """The conformance run before going live: sample records of the real source go through
    a scratch broker vhost, sync service and portal simulator, with duplicates, out-of-order
    versions, broken records and a broker outage. One PASS/FAIL line per step."""
    from bus.logging import configure_logging
    from bus.settings import Settings
    from connectors.config import ConfigError, load_config, make_source
    from connectors.conformance import RecordsFileError, read_records
    from connectors.conformance import check as conformance

    settings = Settings()
    if "log_level" not in settings.model_fields_set:
        # The outage is forced: its warnings would bury the report, which says it all.
        settings = settings.model_copy(update={"log_level": "error"})
    configure_logging(settings)
    try:
        config = load_config(config_path)
        source = make_source(config, config_path)
        given = read_records(records) if records is not None else None
    except ConfigError as error:
        for line in error.problems:
            click.echo(f"FAIL config: {line}")
        raise SystemExit(1) from None
    except RecordsFileError as error:
        raise click.ClickException(str(error)) from None
    on = source.describe() if records is None else f"the records of {records.name}"
    click.echo(f"checking {config.connector.kind} connector {config.connector.name!r} on {on}")
    report = asyncio.run(
        conformance(
            config,
            settings,
            source=source,
            records=given,
            sample=sample,
            management_url=management_url,
            on_step=lambda step: click.echo("\n".join(step.lines())),
        )
    )
    click.echo(report.summary())
    if not report.passed:
        raise SystemExit(1)
