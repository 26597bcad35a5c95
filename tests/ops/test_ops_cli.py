"""`bus status` and `bus dlq ...` through click's test runner, on dead letters made by the
sync service for real: readable tables, one-line errors, JSON for scripts."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner
from ops_support import Made, operating

from bus.cli import main
from bus.settings import Settings
from sync.sync_support import Portal


def made(settings: Settings, portal: Portal) -> Made:
    async def scenario() -> Made:
        async with operating(settings, portal) as ops:
            return await ops.make_dead_letters()

    return asyncio.run(scenario())


def env(settings: Settings) -> dict[str, str]:
    return {
        "BUS_AMQP_URL": settings.amqp_url.get_secret_value(),
        "BUS_OPS_URL": settings.ops_url.get_secret_value(),
        "BUS_LOG_LEVEL": "warning",
    }


def test_bus_status_and_dlq_list_print_readable_tables(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    events = made(ops_settings, ops_portal)
    runner = CliRunner()
    status = runner.invoke(main, ["status"], env=env(ops_settings))
    listed = runner.invoke(main, ["dlq", "list"], env=env(ops_settings))

    assert status.exit_code == 0, status.output
    lines = status.stdout.splitlines()
    assert lines[0] == "Queues"
    assert lines[1].split() == ["queue", "type", "messages", "ready", "unacked", "consumers",
                                "in/s", "out/s"]  # fmt: skip
    assert any(line.split()[:2] == ["portal.sync.dlq", "quorum"] for line in lines)
    units = lines[lines.index("Units") + 1 :]
    assert units[0].split()[:3] == ["unit", "dead", "letters"]
    assert units[2].split()[:3] == ["G01", "2", "signature=2"]
    assert units[3].split()[:3] == ["H29", "4", "portal_rejected=1,"]

    assert listed.exit_code == 0, listed.output
    rows = listed.stdout.splitlines()
    assert rows[0].split()[:3] == ["id", "unit", "reason"]
    assert set(rows[1]) == {"-", " "}
    assert len(rows) == 2 + events.count
    assert rows[2].split()[:3] == [str(events.rejected.event_id), "H29", "portal_rejected"]


def test_dlq_show_masks_personal_data_and_replay_by_reason_is_audited(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    events = made(ops_settings, ops_portal)
    runner = CliRunner()
    rejected = str(events.rejected.event_id)
    shown = runner.invoke(main, ["dlq", "show", rejected], env=env(ops_settings))
    as_json = runner.invoke(main, ["dlq", "show", rejected, "--json"], env=env(ops_settings))
    discarded = runner.invoke(
        main, ["dlq", "discard", "--reason", "signature", "--yes"], env=env(ops_settings)
    )
    audit = runner.invoke(main, ["dlq", "audit", "--json"], env=env(ops_settings))
    waiting = runner.invoke(main, ["dlq", "list", "--json"], env=env(ops_settings))

    applicant = events.rejected.payload.dossier.applicant
    assert shown.exit_code == 0, shown.output
    assert "portal_rejected" in shown.stdout
    assert applicant.id_number is not None
    assert applicant.id_number not in shown.stdout
    assert applicant.id_number not in as_json.stdout
    assert json.loads(as_json.stdout)["id"] == rejected
    assert discarded.exit_code == 0, discarded.output
    assert discarded.stdout.strip() == "discarded 2 dead letters (reason=signature)"
    [entry] = [json.loads(line) for line in audit.stdout.splitlines()]
    assert (entry["action"], entry["unit"], entry["count"]) == ("discard", "G01", 2)
    assert {json.loads(line)["unit"] for line in waiting.stdout.splitlines()} == {"H29"}


def test_dlq_commands_fail_with_one_clear_line(ops_settings: Settings) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["dlq", "show", "no-such-id", "--no-collect"],
                            env=env(ops_settings))  # fmt: skip
    nothing_chosen = runner.invoke(main, ["dlq", "replay"], env=env(ops_settings))

    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: no dead letter 'no-such-id'"
    assert nothing_chosen.exit_code == 2
    assert "give dead-letter ids, or --unit and/or --reason, or --all" in nothing_chosen.output
