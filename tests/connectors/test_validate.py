"""`bus connector validate` reports each mistake of a team's config in one readable line,
before anything runs."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pipeline import example, written

from bus.cli import main
from connectors.config import load_config, make_source

ENV = {"BUS_SIGNING_KEY": base64.b64encode(b"k" * 32).decode(), "BUS_SIGNING_KEY_ID": "k1"}


def validate(config: Path) -> Result:
    return CliRunner().invoke(main, ["connector", "validate", str(config)], env=ENV)


def failures(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("FAIL")]


def edited(config: Path, old: str, new: str) -> Path:
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")
    return config


def test_a_config_that_is_right_is_reported_ready(tmp_path: Path, database: str) -> None:
    result = validate(written("sql_poll", tmp_path, url=database))
    assert result.exit_code == 0, result.output
    assert "30 sample records map to valid events" in result.output


def test_a_mapping_to_a_field_the_contract_does_not_have_is_one_line(
    tmp_path: Path, database: str
) -> None:
    config = written("sql_poll", tmp_path, url=database)
    result = validate(edited(config, '"applicant.name" =', '"applicant.nam" ='))
    assert result.exit_code == 1
    assert failures(result) == [
        "FAIL config: mapping: 'applicant.nam' is not a field of the contract's dossier"
    ]


def test_a_misspelt_key_is_one_line(tmp_path: Path, database: str) -> None:
    config = written("sql_poll", tmp_path, url=database)
    result = validate(edited(config, "poll_interval =", "pol_interval ="))
    assert failures(result) == ["FAIL config: connector.pol_interval: unknown key (a typo?)"]


def test_a_local_status_without_a_national_code_is_one_line(tmp_path: Path, database: str) -> None:
    config = written("sql_poll", tmp_path, url=database)
    result = validate(edited(config, "DA_TRA = 10", "# DA_TRA is forgotten"))
    assert result.exit_code == 1
    [line] = failures(result)
    assert line.startswith(
        "FAIL mapping: trang_thai: local status 'DA_TRA' has no national code in [mapping.status]"
    )


def test_an_unreachable_source_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("H29_API_KEY", "key")
    config = written("rest_poll", tmp_path, url="http://127.0.0.1:9/api/v1/ho-so")
    result = validate(config)
    assert result.exit_code == 1
    [line] = failures(result)
    assert line.startswith("FAIL source: rest_poll http://127.0.0.1:9/api/v1/ho-so")
    assert "cannot connect" in line


def test_a_missing_signing_key_is_reported(tmp_path: Path, database: str) -> None:
    config = written("sql_poll", tmp_path, url=database)
    result = CliRunner().invoke(main, ["connector", "validate", str(config)], env={
        "BUS_SIGNING_KEY": None, "BUS_SIGNING_KEY_ID": None})  # fmt: skip
    assert [line[:25] for line in failures(result)] == ["FAIL signing key: g01-dvc"]


@pytest.mark.parametrize("kind", ["rest_poll", "sql_poll", "webhook", "file_drop"])
def test_each_example_shipped_with_the_project_loads_as_its_kind(kind: str) -> None:
    config = load_config(example(kind))
    assert config.connector.kind == kind
    assert make_source(config).kind == kind
