"""The `bus` command line, driven through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bus.cli import main
from schemas import EVENT_TYPES


def test_bus_help_says_what_the_bus_is_and_lists_the_schema_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "National Public Service Portal" in result.output
    assert "schema" in result.output


def test_bus_version_prints_the_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("dossier-bus, version ")


def test_schema_export_writes_one_file_per_schema_and_prints_a_line_for_each(
    tmp_path: Path,
) -> None:
    target = tmp_path / "contract"
    result = CliRunner().invoke(main, ["schema", "export", str(target)])
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in target.iterdir())
    assert names == sorted(f"{name}.schema.json" for name in [*EVENT_TYPES, "envelope"])
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("wrote ")] == [
        f"wrote {target / name}" for name in names
    ]
    assert lines[-1] == f"{len(names)} JSON Schemas of contract version 1 in {target}"
    for name in names:
        assert json.loads((target / name).read_text(encoding="utf-8"))["$id"]


def test_schema_export_into_a_file_fails_with_a_usage_error(tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.write_text("")
    result = CliRunner().invoke(main, ["schema", "export", str(occupied)])
    assert result.exit_code == 2
    assert "is a file" in result.output


def test_topology_apply_declares_everything_and_is_safe_to_repeat(vhost: str) -> None:
    env = {"BUS_AMQP_URL": vhost}
    first = CliRunner().invoke(main, ["topology", "apply"], env=env)
    again = CliRunner().invoke(main, ["topology", "apply"], env=env)
    assert first.exit_code == 0, first.output
    assert "queue    portal.sync  quorum" in first.output
    assert "queue    dossier.audit  stream" in first.output
    assert again.exit_code == 0
    assert again.output.splitlines()[-1] == first.output.splitlines()[-1]


def test_topology_apply_names_the_queue_and_argument_that_differ(vhost: str) -> None:
    CliRunner().invoke(main, ["topology", "apply"], env={"BUS_AMQP_URL": vhost})
    result = CliRunner().invoke(
        main, ["topology", "apply"], env={"BUS_AMQP_URL": vhost, "BUS_DELIVERY_LIMIT": "3"}
    )
    assert result.exit_code == 1
    assert "queue 'portal.sync' already exists with x-delivery-limit=20" in result.output
    assert "wants x-delivery-limit=3" in result.output
