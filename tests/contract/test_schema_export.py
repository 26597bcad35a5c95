"""The exported JSON Schemas say what the Python models say, checked by an independent
validator (the `jsonschema` library, draft 2020-12, with format checking)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator, FormatChecker

from factories import RECEIVED, a_dossier, a_status_changed
from schemas import (
    EVENT_TYPES,
    ContractError,
    DossierStatus,
    Event,
    ResultDocument,
    Supplement,
    decode_event,
    encode_event,
)
from schemas.export import ENVELOPE, export, json_schemas
from strategies import events

# jsonschema checks "date-time" only when rfc3339-validator is installed; without it the
# format is silently accepted, so a test relying on it must know.
CHECKS_DATE_TIME = "date-time" in FormatChecker.checkers


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json_schemas()[name], format_checker=FormatChecker())


def one_event_of_each_type() -> dict[str, Event]:
    """A valid event of every type, all about the factory's dossier."""
    common = a_status_changed().model_dump(exclude={"event_type", "payload"})
    dossier = a_dossier()
    payloads: dict[str, dict[str, Any]] = {
        "dossier_upserted": {"dossier": dossier},
        "status_changed": {"dossier": dossier, "previous_status": DossierStatus.RECEIVED},
        "progress_recorded": {"dossier": dossier, "step": dossier.progress[0]},
        "payment_recorded": {
            "dossier": dossier,
            "fee": dossier.fees[0],
            "paid_at": RECEIVED + timedelta(hours=1),
        },
        "supplement_requested": {
            "dossier": a_dossier(status=DossierStatus.SUPPLEMENT_REQUESTED),
            "supplement": Supplement(
                requested_by="Trần Thị Bình",
                content="Bổ sung bản vẽ thiết kế",
                requested_at=RECEIVED + timedelta(days=2),
            ),
        },
        "result_returned": {
            "dossier": a_dossier(status=DossierStatus.RETURNED),
            "results": (
                ResultDocument(
                    name="Giấy phép xây dựng",
                    document_id="GP-0001",
                    url="https://files.example.vn/gp-0001",
                ),
            ),
        },
    }
    assert payloads.keys() == EVENT_TYPES.keys(), "a new event type needs an example here"
    return {
        name: cast(Event, model.model_validate({**common, "payload": payloads[name]}))
        for name, model in EVENT_TYPES.items()
    }


def as_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(encode_event(event))
    return data


def schema_errors(name: str, instance: object) -> list[str]:
    return [error.message for error in validator(name).iter_errors(instance)]


def test_there_is_one_schema_per_event_type_and_one_envelope_for_any_event() -> None:
    assert set(json_schemas()) == {*EVENT_TYPES, ENVELOPE}


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_an_event_encoded_by_the_models_is_valid_against_its_own_schema_and_the_envelope(
    event_type: str,
) -> None:
    instance = as_json(one_event_of_each_type()[event_type])
    assert schema_errors(event_type, instance) == []
    assert schema_errors(ENVELOPE, instance) == []


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_an_event_of_one_type_is_invalid_against_another_types_schema(event_type: str) -> None:
    instance = as_json(one_event_of_each_type()[event_type])
    other = next(name for name in EVENT_TYPES if name != event_type)
    assert schema_errors(other, instance)


def broken(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = as_json(a_status_changed())
    change(data)
    return data


BREAKAGES: dict[str, Callable[[dict[str, Any]], object]] = {
    "unknown top-level field": lambda data: data.update(priority="high"),
    "unknown field inside the dossier": lambda data: data["payload"]["dossier"].update(x=1),
    "status 11": lambda data: data["payload"]["dossier"].update(status=11),
    "malformed dossier code": lambda data: data.update(dossier_code="H29-240115-0001"),
    "malformed agency in the source": lambda data: data["source"].update(agency="000.00.01"),
    "missing seq": lambda data: data.pop("seq"),
    "negative seq": lambda data: data.update(seq=-1),
    "wrong event type tag": lambda data: data.update(event_type="status_change"),
    "missing event type tag": lambda data: data.pop("event_type"),
    "event_id not a UUID": lambda data: data.update(event_id="event-1"),
    "empty results list": lambda data: data.update(
        event_type="result_returned", payload={"dossier": data["payload"]["dossier"], "results": []}
    ),
}


@pytest.mark.parametrize("change", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_a_broken_event_is_refused_by_the_envelope_schema_and_by_the_decoder_alike(
    change: Callable[[dict[str, Any]], object],
) -> None:
    data = broken(change)
    assert schema_errors(ENVELOPE, data)
    with pytest.raises(ContractError):
        decode_event(orjson.dumps(data))


@pytest.mark.skipif(
    not CHECKS_DATE_TIME,
    reason="jsonschema checks date-time only with rfc3339-validator installed "
    "(pip install 'jsonschema[format-nongpl]')",
)
def test_a_timestamp_without_a_time_zone_fails_date_time_format_checking() -> None:
    data = broken(lambda data: data.update(occurred_at="2024-01-15T08:30:00"))
    assert schema_errors(ENVELOPE, data)
    assert schema_errors("status_changed", data)
    with pytest.raises(ContractError):
        decode_event(orjson.dumps(data))


def test_cross_field_rules_are_left_to_the_decoder_and_named_in_every_description() -> None:
    """The source agency must be in the dossier's unit: only the decoder can check that."""
    data = broken(lambda data: data["source"].update(agency="000.00.01.H01"))
    assert schema_errors(ENVELOPE, data) == []
    with pytest.raises(ContractError, match="unit"):
        decode_event(orjson.dumps(data))
    for schema in json_schemas().values():
        assert "source.agency must be in the dossier's unit" in schema["description"]
        assert "payload.dossier.code equals dossier_code" in schema["description"]


def test_code_lists_carry_their_member_names_and_vietnamese_labels() -> None:
    status = json_schemas()[ENVELOPE]["$defs"]["DossierStatus"]
    assert status["enum"] == [code.value for code in DossierStatus]
    assert status["x-enum-varnames"] == [code.name for code in DossierStatus]
    assert status["x-enum-descriptions"] == [code.label for code in DossierStatus]


def test_dossier_timestamp_bounds_are_stated_in_the_fields_description() -> None:
    handled_at = json_schemas()["progress_recorded"]["$defs"]["Progress"]["properties"][
        "handled_at"
    ]
    assert handled_at["format"] == "date-time"
    assert "1970-01-01T00:00:00Z" in handled_at["description"]
    assert "2100-01-01T00:00:00Z" in handled_at["description"]


def test_exported_files_are_valid_draft_2020_12_schemas_named_after_their_event_type(
    tmp_path: Path,
) -> None:
    written = export(tmp_path / "json")
    assert sorted(path.name for path in written) == sorted(
        f"{name}.schema.json" for name in (*EVENT_TYPES, ENVELOPE)
    )
    for path in written:
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(path.name.removesuffix(".schema.json"))
        assert schema["title"]


def test_exported_files_keep_vietnamese_labels_readable_and_export_the_same_bytes_twice(
    tmp_path: Path,
) -> None:
    first = {path.name: path.read_bytes() for path in export(tmp_path / "a")}
    second = {path.name: path.read_bytes() for path in export(tmp_path / "b")}
    assert first == second
    assert "Đang xử lý" in first["envelope.schema.json"].decode("utf-8")


def test_an_exported_file_validates_events_just_like_the_in_memory_schema(tmp_path: Path) -> None:
    (path,) = (p for p in export(tmp_path) if p.name == "status_changed.schema.json")
    from_file = Draft202012Validator(
        json.loads(path.read_text(encoding="utf-8")), format_checker=FormatChecker()
    )
    assert list(from_file.iter_errors(as_json(a_status_changed()))) == []
    assert list(from_file.iter_errors(broken(lambda data: data.update(seq=-1))))


# Drawing one event takes ~50 ms: 50 keep this near a second and all but surely meet all six types.
@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(event=events())
def test_any_event_the_models_accept_is_valid_against_its_schema_and_the_envelope(
    event: Event,
) -> None:
    instance = as_json(event)
    assert schema_errors(event.event_type, instance) == []
    assert schema_errors(ENVELOPE, instance) == []
