"""The sample lifecycles: valid contract events, in seq order, moving only as DOMAIN.md's
usual moves allow, and the same for the same seed."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.sample import lifecycles
from schemas import (
    ApplicantType,
    DossierStatus,
    Event,
    PaymentRecorded,
    ProgressRecorded,
    ResultReturned,
    StatusChanged,
    SupplementRequested,
    Verdict,
    decode_event,
    encode_event,
    verdict,
)
from schemas.wire import VIETNAM_TIME

AGENCY = "000.00.01.H29"
START = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample() -> list[list[Event]]:
    return lifecycles(AGENCY, 2000, seed=7, start=START)


def all_events(sample: list[list[Event]]) -> list[Event]:
    return [event for events in sample for event in events]


def test_every_generated_event_is_valid_under_the_contract(sample: list[list[Event]]) -> None:
    for event in all_events(sample):
        assert decode_event(encode_event(event)) == event


def test_each_dossiers_events_start_with_its_upsert_and_count_seq_up_by_one(
    sample: list[list[Event]],
) -> None:
    for events in sample:
        assert events[0].event_type == "dossier_upserted"
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert {event.dossier_code for event in events} == {events[0].dossier_code}


def test_every_status_move_is_a_usual_one(sample: list[list[Event]]) -> None:
    for events in sample:
        statuses = [event.payload.dossier.status for event in events]
        for previous, new in zip([None, *statuses], statuses, strict=False):
            assert verdict(previous, new) is Verdict.USUAL, (events[0].dossier_code, statuses)


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    def encoded(seed: int) -> list[bytes]:
        return [encode_event(e) for e in all_events(lifecycles(AGENCY, 50, seed=seed, start=START))]

    assert encoded(1) == encoded(1)
    assert encoded(1) != encoded(2)


def test_a_longer_run_begins_with_the_dossiers_of_a_shorter_one() -> None:
    longer = lifecycles(AGENCY, 30, seed=3, start=START)
    assert lifecycles(AGENCY, 10, seed=3, start=START) == longer[:10]


def test_time_moves_forward_within_each_dossier_and_its_progress_only_grows(
    sample: list[list[Event]],
) -> None:
    for events in sample:
        moments = [event.occurred_at for event in events]
        assert moments == sorted(set(moments))
        assert events[0].occurred_at == events[0].payload.dossier.submitted_at
        for before, after in itertools.pairwise(events):
            older, newer = before.payload.dossier.progress, after.payload.dossier.progress
            assert newer[: len(older)] == older
        steps = [step.handled_at for step in events[-1].payload.dossier.progress]
        assert steps == sorted(set(steps)), "the portal keys steps by moment: never two alike"


def test_dossier_codes_are_the_agencys_numbered_per_day_of_submission(
    sample: list[list[Event]],
) -> None:
    codes = [events[0].dossier_code for events in sample]
    assert len(set(codes)) == len(codes)
    numbers: Counter[str] = Counter()
    for events in sample:
        submitted = events[0].payload.dossier.submitted_at
        assert submitted is not None
        day = f"{submitted.astimezone(VIETNAM_TIME):%y%m%d}"
        numbers[day] += 1
        assert events[0].dossier_code == f"{AGENCY}-{day}-{numbers[day]:04d}"


def test_events_come_from_a_connector_of_the_agency(sample: list[list[Event]]) -> None:
    sources = {event.source for event in all_events(sample)}
    assert {(s.connector, str(s.agency)) for s in sources} == {("sample-h29", AGENCY)}
    other = lifecycles(AGENCY, 1, seed=1, start=START, connector="igate-hcm")
    assert other[0][0].source.connector == "igate-hcm"


def test_applicants_have_vietnamese_names_and_contract_valid_ids_and_phones(
    sample: list[list[Event]],
) -> None:
    citizens = [
        events[0].payload.dossier.applicant
        for events in sample
        if events[0].payload.dossier.applicant.type is ApplicantType.CITIZEN
    ]
    assert len(citizens) > len(sample) / 2
    for person in citizens:
        assert len(person.name.split()) == 3  # họ, tên đệm, tên
        assert re.fullmatch(r"[0-9]{12}", person.id_number or "")
        assert person.phone is None or re.fullmatch(r"0[35789][0-9]{8}", person.phone)
        assert person.other_info is not None
        assert person.other_info.startswith("Địa chỉ")


def test_the_due_date_is_after_reception_and_moves_with_a_supplement(
    sample: list[list[Event]],
) -> None:
    for event in all_events(sample):
        dossier = event.payload.dossier
        if dossier.received_at is not None:
            assert dossier.due_at is not None
            assert dossier.due_at > dossier.received_at
        for supplement in dossier.supplements:
            if supplement.new_due_at is not None:
                assert supplement.previous_due_at is not None
                assert supplement.new_due_at > supplement.previous_due_at


def test_each_event_type_says_what_its_step_did(sample: list[list[Event]]) -> None:
    seen: Counter[str] = Counter()
    for events in sample:
        for before, event in itertools.pairwise(events):
            seen[event.event_type] += 1
            old, new = before.payload.dossier, event.payload.dossier
            if isinstance(event, StatusChanged):
                assert event.payload.previous_status is old.status is not new.status
            elif isinstance(event, ProgressRecorded):
                assert new.status is old.status
                assert new.progress == (*old.progress, event.payload.step)
            elif isinstance(event, SupplementRequested):
                assert new.status is DossierStatus.SUPPLEMENT_REQUESTED
                assert new.supplements[-1] == event.payload.supplement
            elif isinstance(event, PaymentRecorded):
                assert event.payload.fee in new.fees
                assert event.payload.paid_at == event.occurred_at
            elif isinstance(event, ResultReturned):
                assert new.status is DossierStatus.RETURNED
                assert event.payload.results == new.results != ()
            else:
                raise AssertionError(f"a second upsert: {event.event_type}")
    assert set(seen) == {
        "status_changed",
        "progress_recorded",
        "supplement_requested",
        "payment_recorded",
        "result_returned",
    }


def test_the_sample_holds_finished_refused_withdrawn_and_unfinished_dossiers(
    sample: list[list[Event]],
) -> None:
    last = Counter(events[-1].payload.dossier.status for events in sample)
    assert {DossierStatus.RETURNED, DossierStatus.REFUSED, DossierStatus.WITHDRAWN} <= set(last)
    assert {DossierStatus.STOPPED, DossierStatus.PROCESSING} <= set(last)
    assert last[DossierStatus.RETURNED] > len(sample) / 2
    assert 5 <= len(all_events(sample)) / len(sample) <= 7


def test_start_may_be_in_any_zone_but_not_naive() -> None:
    hanoi = START.astimezone(timezone(timedelta(hours=7)))
    assert lifecycles(AGENCY, 3, seed=1, start=hanoi) == lifecycles(AGENCY, 3, seed=1, start=START)
    with pytest.raises(ValueError, match="timezone-aware"):
        lifecycles(AGENCY, 1, seed=1, start=START.replace(tzinfo=None))
