"""`check`: a conformance run, from the records to the report, one step after another."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import structlog

from bus.settings import Settings
from connectors.config import ConnectorConfig, make_source
from connectors.conformance.errors import ScratchError, Stopped
from connectors.conformance.records import SAMPLE_SIZE, read_sample
from connectors.conformance.report import Report, Step
from connectors.conformance.scratch import scratch
from connectors.conformance.steps import STEPS, Pipeline, map_records
from connectors.source import PollSource, Record, Source, SourceError

log = structlog.get_logger(__name__)


async def check(
    config: ConnectorConfig,
    settings: Settings,
    *,
    source: Source | None = None,
    records: Sequence[Record] | None = None,
    sample: int = SAMPLE_SIZE,
    management_url: str | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Report:
    """Run the conformance steps; `records` instead of a sample of the source's.

    `settings` give the broker (its URL, with credentials allowed to create a virtual host)
    and the defaults of the scratch services; the management API is where
    `management_url_for` says unless `management_url` is given. `on_step` sees each step
    as it ends."""
    report = Report()

    def add(step: Step) -> None:
        report.steps.append(step)
        if on_step is not None:
            on_step(step)

    def skip_rest(reason: str) -> Report:
        for name in STEPS[len(report.steps) :]:
            add(Step("SKIP", name, reason))
        return report

    if records is None:
        source = source if source is not None else make_source(config)
        if not isinstance(source, PollSource):
            advice = (
                f"a push source ({source.describe()}) cannot be sampled: run the check with"
                " --records FILE.json, an array of records as the local system pushes them"
            )
            add(Step("SKIP", "records map", advice))
            return skip_rest("no records")
        try:
            records = await read_sample(source, sample)
        except SourceError as error:
            add(Step("FAIL", "records map", f"source: {error}"))
            return skip_rest("no records")
    records = list(records)
    if not records:
        advice = "no records to run on: run again once the source has some, or with --records"
        add(Step("SKIP", "records map", advice))
        return skip_rest("no records")
    mapped, step = map_records(config, records)
    add(step)
    if not mapped:
        return skip_rest("no record maps")
    # Refused records fail the step above, yet the pipeline is still checked on the others.
    try:
        async with scratch(config, settings, management_url) as env:
            pipeline = Pipeline(env)
            for name, action in [
                ("delivered", lambda: pipeline.delivered(mapped)),
                ("duplicates", lambda: pipeline.duplicates([r for r, _ in mapped])),
                ("out-of-order", pipeline.out_of_order),
                ("bad records", pipeline.bad_records),
                ("broker outage", pipeline.broker_outage),
            ]:
                step = await _guarded(name, action)
                add(step)
                if name == "delivered" and step.outcome == "FAIL":
                    return skip_rest("needs the dossiers delivered first")
    except ScratchError as error:
        name = STEPS[min(len(report.steps), len(STEPS) - 1)]
        add(Step("FAIL", name, f"scratch environment: {error}"))
        return skip_rest("no scratch environment")
    return report


async def _guarded(name: str, action: Callable[[], Awaitable[Step]]) -> Step:
    """A step that breaks (the sync service stopped, the broker refused) fails, alone: the
    report still comes out, and the environment is still cleaned up."""
    try:
        return await action()
    except Stopped as error:
        return Step("FAIL", name, str(error))
    except Exception as error:
        log.exception("conformance step failed", step=name)
        return Step("FAIL", name, f"{type(error).__name__}: {error}")
