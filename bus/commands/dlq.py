"""`bus dlq ...`: the dead-letter queue from the command line: list, show, replay, discard,
and the audit log.

Each command first collects what waits in portal.sync.dlq into the operator store
(`BUS_OPS_URL`), so what it shows is current; `--no-collect` reads the store alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
import orjson

from bus.commands.ops import (
    command_settings,
    echo_json,
    login_operator,
    opened_dead_letters,
    run_command,
    shortened,
)

if TYPE_CHECKING:
    from bus.ops import DeadLetter

STATUSES = click.Choice(["waiting", "replayed", "discarded", "all"])
CHUNK = 100  # dead letters per step of a bulk action: what the progress bar moves by


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

    settings = command_settings()

    async def work() -> list[DeadLetter]:
        async with opened_dead_letters(settings, collect=not no_collect) as letters:
            chosen = None if state == "all" else state
            return letters.list(
                login_operator(), unit=unit, reason=reason, status=chosen, limit=limit
            )

    letters = run_command(work())
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
                    shortened(d.error),
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

    settings = command_settings()

    async def work() -> DeadLetter:
        async with opened_dead_letters(settings, collect=not no_collect) as letters:
            return letters.get(login_operator(), id)

    letter = run_command(work())
    shown = {**_summary(letter), "headers": letter.masked_headers(), "body": letter.masked_body()}
    if as_json:
        echo_json(shown)
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
                    shortened(f.error),
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
    settings = command_settings()
    operator = login_operator()

    async def work() -> int:
        async with opened_dead_letters(settings, collect=True) as letters:
            chosen = list(ids) or letters.select(operator, unit=unit, reason=reason)
            if not chosen:
                return 0
            if not yes and not click.confirm(f"{action} {len(chosen)} dead letters?"):
                raise click.Abort
            act = letters.replay if action == "replay" else letters.discard
            bar = Bar(sys.stderr, action, len(chosen), "dead letters")
            done = 0
            for start in range(0, len(chosen), CHUNK):
                done += await act(operator, chosen[start : start + CHUNK], target=target)
                bar.show(min(start + CHUNK, len(chosen)))
            bar.finish(len(chosen))
            return done

    count = run_command(work())
    if as_json:
        echo_json({"action": action, "count": count, "target": target or list(ids)})
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

    settings = command_settings()
    with OpsStore(settings.ops_url.get_secret_value()) as store:
        entries = store.audit_entries(units=login_operator().units, limit=limit)
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
                    shortened(e.target),
                ]
                for e in entries
            ],
        )
        if entries
        else "no operator actions yet"
    )


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return letter.model_dump(mode="json", exclude={"body", "headers", "history"})
