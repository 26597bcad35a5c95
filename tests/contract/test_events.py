"""Events decode into frozen models, and every invalid value is refused with field, value
(masked when personal) and rule."""

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from factories import a_dossier, a_status_changed, an_event_dict
from schemas import ContractError, StatusChanged, decode_event, encode_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6)
    ),
    max_leaves=30,
)


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ContractError) as caught:
        decode_event(orjson.dumps(data))
    return str(caught.value)


def with_dossier(**changes: Any) -> dict[str, Any]:
    data = an_event_dict()
    data["payload"]["dossier"].update(changes)
    return data


def test_an_event_survives_encoding_and_decoding_unchanged() -> None:
    event = a_status_changed(seq=7)
    assert decode_event(encode_event(event)) == event


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError):
        a_status_changed().seq = 8  # type: ignore[misc]


def test_the_routing_unit_is_the_dossier_codes_level_one_group() -> None:
    assert a_status_changed().unit == "H29"


def test_a_status_outside_one_to_ten_names_field_value_and_rule() -> None:
    message = refusal(with_dossier(status=11))
    assert "payload.dossier.status: 11 — Input should be 1, 2, 3" in message


def test_a_wrong_code_is_refused() -> None:
    assert "payload.dossier.channel: 9 — Input should be 1, 2 or 3" in refusal(
        with_dossier(channel=9)
    )


def test_a_bad_date_is_refused() -> None:
    message = refusal(an_event_dict(occurred_at="2024-13-01T00:00:00Z"))
    assert "occurred_at: '2024-13-01T00:00:00Z' — Input should be a valid datetime" in message


def test_a_naive_datetime_is_refused() -> None:
    message = refusal(with_dossier(received_at="2024-01-15T08:30:00"))
    assert "payload.dossier.received_at: '2024-01-15T08:30:00'" in message
    assert "timezone info" in message


def test_a_dossier_code_with_a_malformed_agency_part_is_refused() -> None:
    message = refusal(an_event_dict(dossier_code="00.00.01.H29-240115-0001"))
    assert "dossier_code: '00.00.01.H29-240115-0001' — its agency part" in message


def test_an_unknown_field_is_refused_at_any_depth() -> None:
    assert "surprise: 1 — Extra inputs are not permitted" in refusal(an_event_dict(surprise=1))
    assert "payload.dossier.colour" in refusal(with_dossier(colour="red"))


def test_text_over_the_wire_limits_is_refused() -> None:
    assert "summary" in refusal(with_dossier(summary="x" * 1001))
    data = with_dossier()
    data["payload"]["dossier"]["progress"][0]["handler"] = "y" * 51
    assert "progress.0.handler" in refusal(data)
    assert "at most 50 characters" in refusal(data)


def test_a_personal_value_in_an_error_is_masked() -> None:
    data = with_dossier()
    data["payload"]["dossier"]["applicant"]["phone"] = "09123-abc-999"
    message = refusal(data)
    assert "applicant.phone: '091********99'" in message
    assert "09123-abc-999" not in message


def test_a_citizens_malformed_id_number_is_refused_without_repeating_it() -> None:
    data = with_dossier()
    data["payload"]["dossier"]["applicant"]["id_number"] = "0012345"
    message = refusal(data)
    assert "12 digits" in message
    assert "0012345" not in message


def test_an_event_from_another_unit_than_its_source_is_refused() -> None:
    data = an_event_dict(source={"connector": "igate", "agency": "000.00.00.H30"})
    assert "belongs to unit H29, but the source agency 000.00.00.H30 is in unit H30" in refusal(
        data
    )


def test_the_snapshot_must_be_of_the_events_dossier() -> None:
    other = a_dossier(code="000.00.01.H29-240115-0002").model_dump(mode="json")
    data = an_event_dict()
    data["payload"]["dossier"] = other
    assert "differs from dossier_code" in refusal(data)


def test_an_unknown_event_type_is_refused() -> None:
    assert "does not match any of the expected tags" in refusal(an_event_dict(event_type="x"))


def test_bytes_that_are_not_json_or_not_utf8_are_refused() -> None:
    for body in (b"\xff\xfe\x00", b"{not json", b""):
        with pytest.raises(ContractError, match="Invalid JSON"):
            decode_event(body)


@given(json_values)
def test_arbitrary_json_raises_only_the_contracts_error(value: Any) -> None:
    with contextlib.suppress(ContractError):
        decode_event(json.dumps(value))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_the_contracts_error(body: bytes) -> None:
    with contextlib.suppress(ContractError):
        decode_event(body)


def test_a_valid_status_event_is_still_a_status_event_after_decoding() -> None:
    assert isinstance(decode_event(encode_event(a_status_changed())), StatusChanged)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


_EVENT = an_event_dict()


@given(st.sampled_from(_paths(_EVENT)[1:]), json_values)
def test_any_field_replaced_by_arbitrary_json_raises_only_the_contracts_error(
    path: tuple[Any, ...], value: Any
) -> None:
    data = orjson.loads(orjson.dumps(_EVENT))
    holder = data
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value
    with contextlib.suppress(ContractError):
        decode_event(json.dumps(data))
