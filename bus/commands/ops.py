"""`bus status`, `bus dlq ...` and `bus replay`: the operator's commands.

Each acts as a national operator named after the login running it, and every replay or
discard is written to the audit log with that name. Dead-letter commands first collect what
waits in portal.sync.dlq into the operator store (`BUS_OPS_URL`), so what they show is
current; `--no-collect` reads the store alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

if TYPE_CHECKING:
    from bus.ops import DeadLetter, DeadLetters, Operator
    from bus.ops.history import Resent
    from bus.settings import Settings

T = TypeVar("T")
MOMENT = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"])
STATUSES = click.Choice(["waiting", "replayed", "discarded", "all"])
CHUNK = 100  # dead letters per step of a bulk action: what the progress bar moves by


def _settings() -> Settings:
    from bus.logging import configure_logging
    from bus.settings import Settings

    settings = Settings()
    configure_logging(settings)
    return settings


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run the command's work; what goes wrong is one line and exit status 1."""
    from bus.errors import BusError
    from bus.management import ManagementError

    try:
        return asyncio.run(work)
    except (BusError, ManagementError) as error:
        raise click.ClickException(str(error)) from None


@contextlib.asynccontextmanager
async def _dead_letters(settings: Settings, *, collect: bool) -> AsyncIterator[DeadLetters]:
    from bus.broker import Connection
    from bus.ops import DeadLetters, OpsStore

    connection = Connection(settings.amqp_url.get_secret_value(), name="bus-ops")
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


def _operator() -> Operator:
    from bus.ops import Operator

    return Operator.from_login()


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode())


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

    settings = _settings()
    queues, units = _run(_status(settings, _operator(), timedelta(minutes=heartbeats_within)))
    if as_json:
        _echo_json({"queues": [asdict(q) for q in queues], "units": [asdict(u) for u in units]})
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
    async with _dead_letters(settings, collect=True) as dead_letters:
        beats = await latest_heartbeats(dead_letters.connection, within=within)
        counts = dead_letters.counts(operator)
    with Management(management_url_for(amqp_url)) as api:
        raw = await asyncio.to_thread(api.queues, vhost_of(amqp_url))
    return queue_status(raw, settings), unit_status(counts, beats.values(), operator.units)


# ---- bus dlq --------------------------------------------------------------------------------


@click.group()
def dlq() -> None:
    """The dead-letter queue: list, show, replay, discard, and the audit log."""


no_collect = click.option(
    "--no-collect", is_flag=True, help="Read the store only; leave portal.sync.dlq as it is."
)


@dlq.command("list")
@click.option("--unit", help="Only this unit's, e.g. H29.")
@click.option("--reason", help="Only this reason, e.g. portal_rejected.")
@click.option("--status", "state", type=STATUSES, default="waiting", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines, bodies masked, for scripts.")
@no_collect
def list_(
    unit: str | None, reason: str | None, state: str, limit: int, as_json: bool, no_collect: bool
) -> None:
    """Dead letters, latest first."""
    from bus.ops.table import age, table

    settings = _settings()

    async def work() -> list[DeadLetter]:
        async with _dead_letters(settings, collect=not no_collect) as dead_letters:
            chosen = None if state == "all" else state
            return dead_letters.list(
                _operator(), unit=unit, reason=reason, status=chosen, limit=limit
            )

    letters = _run(work())
    if as_json:
        for letter in letters:
            click.echo(orjson.dumps(_summary(letter), default=str).decode())
        return
    if not letters:
        click.echo("no dead letters")
        return
    now = datetime.now(UTC)
    columns = ["id", "unit", "reason", "type", "dossier", "tries", "replays", "status", "age",
               "error"]  # fmt: skip
    click.echo(
        table(
            columns,
            [
                [
                    d.id,
                    d.unit,
                    d.reason,
                    d.event_type,
                    d.dossier_code,
                    d.attempts,
                    d.replays,
                    d.status,
                    age((now - d.dead_lettered_at).total_seconds()),
                    _short(d.error),
                ]
                for d in letters
            ],
        )
    )
    if len(letters) == limit:
        click.echo(f"(first {limit}; --limit for more)")


@dlq.command()
@click.argument("id")
@click.option("--json", "as_json", is_flag=True)
@no_collect
def show(id: str, as_json: bool, no_collect: bool) -> None:
    """One dead letter: why, when, its history, headers and body (personal data masked)."""
    from bus.ops.table import table

    settings = _settings()

    async def work() -> DeadLetter:
        async with _dead_letters(settings, collect=not no_collect) as dead_letters:
            return dead_letters.get(_operator(), id)

    letter = _run(work())
    shown = {**_summary(letter), "headers": letter.masked_headers(), "body": letter.masked_body()}
    if as_json:
        _echo_json(shown)
        return
    for key in ("id", "unit", "dossier_code", "event_type", "connector", "routing_key",
                "status", "reason", "error_class", "error", "attempts", "replays",
                "first_failure", "last_failure", "dead_lettered_at"):  # fmt: skip
        click.echo(f"{key + ':':<17} {shown[key] if shown[key] is not None else '-'}")
    click.echo("\nhistory")
    click.echo(
        table(
            ["dead-lettered", "reason", "attempts", "replayed by", "error"],
            [
                [
                    f.dead_lettered_at.isoformat(timespec="seconds"),
                    f.reason,
                    f.attempts,
                    f.replayed_by,
                    _short(f.error),
                ]
                for f in letter.history
            ],
        )
    )
    click.echo("\nheaders")
    for key, value in sorted(letter.masked_headers().items()):
        click.echo(f"  {key}: {value}")
    click.echo("\nbody (personal data masked)")
    click.echo(orjson.dumps(shown["body"], option=orjson.OPT_INDENT_2).decode())


def _bulk_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.argument("ids", nargs=-1),
            click.option("--unit", help="Every waiting dead letter of this unit."),
            click.option("--reason", help="Every waiting dead letter with this reason."),
            click.option("--all", "every", is_flag=True, help="Every waiting dead letter."),
            click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
            click.option("--json", "as_json", is_flag=True),
        ]
    ):
        command = option(command)
    return command


@dlq.command()
@_bulk_options
def replay(
    ids: tuple[str, ...],
    unit: str | None,
    reason: str | None,
    every: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Send dead letters back to portal.sync, as they first arrived: by id, or every waiting
    one of a unit, of a reason, or --all. One that fails again comes back here."""
    _bulk("replay", ids, unit, reason, every, yes, as_json)


@dlq.command()
@_bulk_options
def discard(
    ids: tuple[str, ...],
    unit: str | None,
    reason: str | None,
    every: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Mark dead letters discarded (kept in the store, out of the way): by id, or every
    waiting one of a unit, of a reason, or --all."""
    _bulk("discard", ids, unit, reason, every, yes, as_json)


def _bulk(
    action: str,
    ids: Sequence[str],
    unit: str | None,
    reason: str | None,
    every: bool,
    yes: bool,
    as_json: bool,
) -> None:
    from bus.demo.progress import Bar

    by_filter = unit is not None or reason is not None
    if sum([bool(ids), by_filter, every]) != 1:
        raise click.UsageError("give dead-letter ids, or --unit and/or --reason, or --all")
    target = None
    if not ids:
        target = " ".join(f"{k}={v}" for k, v in (("unit", unit), ("reason", reason)) if v)
        target = target or "all"
    settings = _settings()
    operator = _operator()

    async def work() -> int:
        async with _dead_letters(settings, collect=True) as dead_letters:
            chosen = list(ids) or dead_letters.select(operator, unit=unit, reason=reason)
            if not chosen:
                return 0
            if not yes and not click.confirm(f"{action} {len(chosen)} dead letters?"):
                raise click.Abort
            act = dead_letters.replay if action == "replay" else dead_letters.discard
            bar = Bar(sys.stderr, action, len(chosen), "dead letters")
            done = 0
            for start in range(0, len(chosen), CHUNK):
                done += await act(operator, chosen[start : start + CHUNK], target=target)
                bar.show(min(start + CHUNK, len(chosen)))
            bar.finish(len(chosen))
            return done

    count = _run(work())
    if as_json:
        _echo_json({"action": action, "count": count, "target": target or list(ids)})
        return
    past = "replayed" if action == "replay" else "discarded"
    click.echo(f"{past} {count} dead letters" + (f" ({target})" if target else ""))


@dlq.command("audit")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def audit_log(limit: int, as_json: bool) -> None:
    """The latest operator actions: who, when, what, on which unit, how many."""
    from bus.ops import OpsStore
    from bus.ops.table import table

    settings = _settings()
    with OpsStore(settings.ops_url.get_secret_value()) as store:
        entries = store.audit_entries(units=_operator().units, limit=limit)
    if as_json:
        for entry in entries:
            click.echo(entry.model_dump_json())
        return
    click.echo(
        table(
            ["at", "actor", "action", "unit", "count", "outcome", "target"],
            [
                [
                    e.at.isoformat(timespec="seconds"),
                    e.actor,
                    e.action,
                    e.unit,
                    e.count,
                    e.outcome,
                    _short(e.target),
                ]
                for e in entries
            ],
        )
        if entries
        else "no operator actions yet"
    )


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return letter.model_dump(mode="json", exclude={"body", "headers", "history"})


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- bus replay -----------------------------------------------------------------------------


@click.command("replay")
@click.option("--unit", required=True, help="Level-1 unit whose history to re-send, e.g. H29.")
@click.option("--since", required=True, type=MOMENT, help="From this moment (UTC unless said).")
@click.option("--until", type=MOMENT, default=None, help="Only events that occurred up to it.")
@click.option("--json", "as_json", is_flag=True)
def history_replay(unit: str, since: datetime, until: datetime | None, as_json: bool) -> None:
    """Re-send UNIT's events from the dossier.audit stream since a moment to portal.sync;
    the sync service's version guard drops what the portal already has."""
    settings = _settings()
    result = _run(_history(settings, unit, _aware(since), until and _aware(until)))
    if as_json:
        _echo_json(asdict(result))
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

    connection = Connection(settings.amqp_url.get_secret_value(), name="bus-replay")
    bars: list[Bar] = []

    def progress(result: Resent) -> None:
        if not bars:
            bars.append(Bar(sys.stderr, "replay", result.total, "read"))
        bars[0].show(result.read, f", {len(result.errors) or ''}")

    with OpsStore(settings.ops_url.get_secret_value()) as store:
        await connection.start(timeout=10)
        try:
            result = await resend_history(
                connection, _operator(), unit, since, until=until, store=store,
                progress=progress, window=settings.publish_window,
            )  # fmt: skip
        finally:
            await connection.close()
    if bars:
        bars[0].finish(result.read, f", {result.sent} re-sent")
    return result
