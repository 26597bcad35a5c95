"""`bus connector check` runs a team's config through duplicates, out-of-order versions,
broken records and a broker outage, on a scratch vhost, sync service and portal simulator,
and says PASS or FAIL for each step.

The broker is the test session's; the check makes (and removes) its own virtual host on it.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from pipeline import written

from bus.cli import main
from connectors import conformance
from connectors.outbox import Outbox
from connectors.relay import Relay
from connectors.sample.local import LocalSystem

START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)


@pytest.fixture
def broker(amqp_url: str, management_url: str) -> dict[str, str]:
    """The environment `bus connector check` runs in: the session's broker (and its
    management API, wherever the fixture found it)."""
    return {"BUS_AMQP_URL": amqp_url, "BUS_MANAGEMENT_URL": management_url}


def check(env: dict[str, str], *args: str | Path) -> Result:
    return CliRunner().invoke(main, ["connector", "check", *map(str, args)], env=env)


def lines(result: Result, outcome: str) -> list[str]:
    """The steps with this outcome, by name."""
    found = [line for line in result.stdout.splitlines() if line.startswith(f"{outcome} ")]
    return [line.removeprefix(f"{outcome} ").partition(":")[0] for line in found]


def test_a_right_sql_config_passes_every_step(
    broker: dict[str, str], tmp_path: Path, database: str
) -> None:
    result = check(broker, written("sql_poll", tmp_path, url=database))
    assert result.exit_code == 0, result.output
    assert lines(result, "PASS") == list(conformance.STEPS)
    assert "PASS delivered: 30 dossiers on the portal simulator as mapped" in result.stdout
    assert result.stdout.splitlines()[-1] == "conformance: PASS"


def test_a_forgotten_status_code_fails_the_mapping_and_still_checks_the_records_that_map(
    broker: dict[str, str], tmp_path: Path, database: str
) -> None:
    # Live, refused records would only go to the rejects; before going live they mean the
    # mapping is incomplete (as `bus connector validate` says), so the check fails on them,
    # while the pipeline steps still run, and pass, on the records that map.
    config = written("sql_poll", tmp_path, url=database)
    config.write_text(config.read_text(encoding="utf-8").replace("DA_TRA = 10", ""))
    result = check(broker, config)
    assert result.exit_code == 1, result.output
    assert lines(result, "FAIL") == ["records map"]
    assert lines(result, "PASS") == list(conformance.STEPS[1:])
    out = result.stdout.splitlines()
    [step] = [line for line in out if line.startswith("FAIL records map")]
    refused = int(step.split()[3])
    assert 0 < refused < 30
    assert step.endswith(
        f"{refused} of 30 refused, see reasons: fix [mapping] (live, they would go to the"
        f" rejects); the steps below run on the {30 - refused} that map"
    )
    reason = out[out.index(step) + 1]
    assert reason.startswith(f"    {refused} × trang_thai: local status 'DA_TRA' has no national")
    assert f"PASS delivered: {30 - refused} dossiers on the portal simulator" in result.stdout
    assert out[-1] == "conformance: FAIL (1 step)"


def test_a_config_that_maps_no_record_fails_before_anything_runs(
    tmp_path: Path, database: str
) -> None:
    config = written("sql_poll", tmp_path, url=database)
    config.write_text(config.read_text(encoding="utf-8").replace('"ma_ho_so"', '"ma_hs"', 1))
    result = check({}, config)
    assert result.exit_code == 1
    assert lines(result, "FAIL") == ["records map"]
    assert lines(result, "SKIP") == list(conformance.STEPS[1:])
    assert result.stdout.splitlines()[-1] == "conformance: FAIL (1 step)"


def test_a_webhook_config_runs_on_a_records_file(broker: dict[str, str], tmp_path: Path) -> None:
    local = LocalSystem("000.00.01.H30", 20, seed=44, start=START)
    records = tmp_path / "pushes.json"
    records.write_bytes(orjson.dumps(local.advance(local.remaining)))
    config = written("webhook", tmp_path, secret_env="H30_WEBHOOK_SECRET")
    result = check(broker, config, "--records", records)
    assert result.exit_code == 0, result.output
    assert lines(result, "PASS") == list(conformance.STEPS)
    assert "PASS delivered: 20 dossiers on the portal simulator as mapped" in result.stdout


def test_a_webhook_config_without_records_says_how_to_check_it(tmp_path: Path) -> None:
    result = check({}, written("webhook", tmp_path, secret_env="H30_WEBHOOK_SECRET"))
    assert result.exit_code == 0
    assert lines(result, "SKIP") == list(conformance.STEPS)
    assert "--records FILE.json" in result.stdout


def test_a_pipeline_that_loses_events_fails_delivery_and_skips_the_rest(
    broker: dict[str, str], tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relay that forgets to sign: the sync service dead-letters every event.
    def unsigned(
        outbox: Outbox, publisher: object, signer: object, connector: str, unit: str
    ) -> Relay:
        return Relay(outbox, publisher, None, connector, unit)  # type: ignore[arg-type]

    monkeypatch.setattr("connectors.conformance.scratch.Relay", unsigned)
    monkeypatch.setattr("connectors.conformance.steps.TIMEOUT", 3.0)
    result = check(broker, written("sql_poll", tmp_path, url=database), "--sample", "10")
    assert result.exit_code == 1, result.output
    assert lines(result, "FAIL") == ["delivered"]
    assert lines(result, "SKIP") == list(conformance.STEPS[2:])
    assert "missing on the portal simulator" in result.stdout
    assert "sync service: dead_lettered 10" in result.stdout


def test_the_management_api_is_where_management_url_says_before_bus_management_url(
    tmp_path: Path, database: str
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://guest:guest@127.0.0.1:{closed.getsockname()[1]}"
        env = {"BUS_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:1"}
        config = written("sql_poll", tmp_path, url=database)
        result = check(env, config, "--management-url", url)
    assert result.exit_code == 1, result.output
    assert lines(result, "PASS") == ["records map"]
    assert lines(result, "FAIL") == ["delivered"]
    assert lines(result, "SKIP") == list(conformance.STEPS[2:])
    where = url.replace("guest:guest@", "")
    assert f"FAIL delivered: scratch environment: the broker's management API at {where}" in (
        result.stdout
    )
