"""Hypothesis strategies for the contract: any valid dossier, any valid event.

Test modules import these by name, so the names are stable:
- `dossiers(codes=None)`: any valid Dossier, its MaHoSo drawn from `codes` when given. Every
  field is exercised: absent and present, empty and full lists, Vietnamese and arbitrary
  Unicode text, texts at their exact length limit, moments in any time zone with
  microseconds the model drops.
- `events(event_types=None)`: any valid event of the six types, or of the types named; the
  envelope is consistent (source agency in the dossier's unit, payload dossier = dossier_code).
- Building blocks: `texts`, `moments`, `units`, `agency_codes`, `dossier_codes`,
  `procedure_codes`, `links`, `applicants`, `documents`, `fees`, `other_papers`, `supplements`,
  `result_documents`, `progress_steps`, `sources`.
"""

from __future__ import annotations

import json
import string
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from typing import Any, cast

from hypothesis import strategies as st

from schemas import (
    Applicant,
    ApplicantType,
    Channel,
    Document,
    Dossier,
    DossierStatus,
    Event,
    Fee,
    FeeCollectionStage,
    FeeKind,
    OnlinePayment,
    OtherPaper,
    Progress,
    ResultDelivery,
    ResultDocument,
    Source,
    Supplement,
    SupplementStatus,
)
from schemas.base import EARLIEST, LATEST
from schemas.events import EVENT_TYPES

VIETNAMESE = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
    "AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬBCDĐEÈÉẺẼẸÊỀẾỂỄỆGHIÌÍỈĨỊKLMNOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢPQRSTUÙÚỦŨỤƯỪỨỬỮỰVXYỲÝỶỸỴ"
    "fjwzFJWZ0123456789 ,.-/()"
)


@cache
def texts(max_size: int) -> st.SearchStrategy[str]:
    """Non-empty text: short Vietnamese, short arbitrary Unicode, or exactly `max_size` long."""
    # A long text repeats a short one: cheap to draw, and it still hits the exact limit.
    full = st.text(VIETNAMESE, min_size=1, max_size=8).map(lambda s: (s * max_size)[:max_size])
    return st.one_of(
        st.text(VIETNAMESE, min_size=1, max_size=min(max_size, 16)),
        st.text(min_size=1, max_size=min(max_size, 8)),
        full,
    )


@cache
def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


_FIXED_ZONES = [
    UTC,
    timezone(timedelta(hours=7)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=45)),
    timezone(timedelta(hours=-9, minutes=-30)),
    timezone(timedelta(hours=14)),
    timezone(timedelta(hours=-12)),
    timezone(timedelta(hours=23, minutes=59)),
    timezone(-timedelta(hours=23, minutes=59)),
]
_ZONES = st.sampled_from(_FIXED_ZONES) | st.timezones()


@cache
def moments() -> st.SearchStrategy[datetime]:
    """Aware datetimes the model accepts (1970..2100), with microseconds, in any zone.

    Nothing is filtered out, not even a clock change's repeated or skipped hour or an offset
    with seconds (Liberia's -00:44:30 until 1972): the models keep every moment in UTC, where
    none of them is odd.
    """
    # A day's margin keeps every zone's local time inside the model's UTC bounds.
    inside = st.datetimes(datetime(1970, 1, 2), datetime(2099, 12, 30), timezones=_ZONES)
    edges = st.builds(
        datetime.astimezone,
        st.sampled_from([EARLIEST, LATEST - timedelta(microseconds=1)]),
        st.sampled_from(_FIXED_ZONES),
    )
    return inside | edges


@cache
def _digits(size: int) -> st.SearchStrategy[str]:
    return st.text(string.digits, min_size=size, max_size=size)


@cache
def _group(size: int) -> st.SearchStrategy[str]:
    return st.text(string.digits + string.ascii_uppercase, min_size=size, max_size=size)


@cache
def units() -> st.SearchStrategy[str]:
    """Level-1 unit groups: G01 for a ministry, H29 for a province."""
    return st.builds("{}{}".format, st.sampled_from("GH"), _digits(2))


@cache
def agency_codes(unit: str | None = None) -> st.SearchStrategy[str]:
    """Agency codes `LLL.LL.LL.XNN`, in the given unit when one is named."""
    return st.builds(
        "{}.{}.{}.{}".format,
        _group(3),
        _group(2),
        _group(2),
        st.just(unit) if unit else units(),
    )


@cache
def dossier_codes() -> st.SearchStrategy[str]:
    """MaHoSo: `<agency code>-<yyMMdd>-<sequence>` with a real date and 1 to 10 digits."""
    days = st.dates(date(2000, 1, 1), date(2099, 12, 31)).map(lambda d: d.strftime("%y%m%d"))
    sequences = st.integers(1, 10).flatmap(_digits)
    return st.builds("{}-{}-{}".format, agency_codes(), days, sequences)


@cache
def procedure_codes() -> st.SearchStrategy[str]:
    """MaTTHC, national (`1.000894`) or localised (`1.000894.000.00.00.H22`)."""
    national = st.builds("{}.{}".format, _digits(1), _digits(6))
    return national | st.builds("{}.{}".format, national, agency_codes())


@cache
def links() -> st.SearchStrategy[str]:
    """Download links, up to the 2048-character limit, Vietnamese paths included."""
    path = st.text(VIETNAMESE.replace(" ", "") + "_~%?=&", min_size=0, max_size=12)
    short = st.builds(
        "{}://files.{}.vn/{}".format, st.sampled_from(["http", "https"]), _group(4), path
    )
    return short | short.map(lambda url: (url + "x" * 2048)[:2048])


_PHONES = st.from_regex(r"\+?[0-9][0-9 .\-]{5,19}", fullmatch=True)
_EMAILS = st.builds(
    "{}@{}.vn".format,
    st.text(VIETNAMESE.replace(" ", "").replace(",", "") + "_+", min_size=1, max_size=30),
    st.text(string.ascii_lowercase + "-", min_size=1, max_size=20),
)


@cache
def applicants() -> st.SearchStrategy[Applicant]:
    """Owners of every type; a citizen's id number, when given, is 12 or 9 digits."""
    return _applicants()


@st.composite
def _applicants(draw: st.DrawFn) -> Applicant:
    kind = draw(st.sampled_from(ApplicantType))
    if kind is ApplicantType.CITIZEN:
        id_number = draw(_optional(_digits(12) | _digits(9)))
    else:
        id_number = draw(_optional(texts(40)))
    return Applicant(
        name=draw(texts(255)),
        type=kind,
        code=draw(_optional(texts(50))),
        id_number=id_number,
        phone=draw(_optional(_PHONES)),
        email=draw(_optional(_EMAILS)),
        fax=draw(_optional(texts(20))),
        other_info=draw(_optional(texts(2000))),
    )


@cache
def documents() -> st.SearchStrategy[Document]:
    return st.builds(
        Document,
        file_id=texts(50),
        file_name=texts(255),
        component_code=_optional(texts(50)),
        url=links(),
        digitized=st.booleans(),
        reused=st.booleans(),
        from_national_repository=st.booleans(),
        deleted=st.booleans(),
    )


@cache
def fees() -> st.SearchStrategy[Fee]:
    return st.builds(
        Fee,
        name=texts(255),
        code=_optional(texts(50)),
        stage=st.sampled_from(FeeCollectionStage),
        amount=st.integers(0, 10**13),
        kind=st.sampled_from(FeeKind),
    )


@cache
def other_papers() -> st.SearchStrategy[OtherPaper]:
    return st.builds(
        OtherPaper,
        name=texts(255),
        quantity=st.integers(1, 10_000),
        kind=_optional(texts(50)),
    )


@cache
def supplements() -> st.SearchStrategy[Supplement]:
    return st.builds(
        Supplement,
        requested_by=texts(255),
        content=texts(2000),
        requested_at=moments(),
        received_at=_optional(moments()),
        status=st.sampled_from(SupplementStatus),
        previous_due_at=_optional(moments()),
        new_due_at=_optional(moments()),
    )


@cache
def result_documents() -> st.SearchStrategy[ResultDocument]:
    return st.builds(
        ResultDocument,
        name=texts(255),
        component_code=_optional(texts(50)),
        document_id=texts(50),
        url=links(),
        result_code=_optional(texts(50)),
    )


@cache
def progress_steps() -> st.SearchStrategy[Progress]:
    """Processing steps; the handler's name reaches its 50-character limit."""
    return st.builds(
        Progress,
        handler=texts(50),
        title=_optional(texts(255)),
        handled_at=moments(),
        department=_optional(texts(255)),
        content=texts(2000),
        status=st.sampled_from(DossierStatus),
        started_at=_optional(moments()),
        due_at=_optional(moments()),
    )


@cache
def _several(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(strategy, max_size=2).map(tuple)


@cache
def dossiers(codes: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Dossier]:
    """Any valid dossier; `codes` draws its MaHoSo (default: any dossier code)."""
    return _dossiers(codes or dossier_codes())


@st.composite
def _dossiers(draw: st.DrawFn, codes: st.SearchStrategy[str]) -> Dossier:
    return Dossier(
        code=draw(codes),
        procedure_code=draw(procedure_codes()),
        procedure_name=draw(texts(2000)),
        sector_code=draw(_optional(texts(50))),
        sector_name=draw(_optional(texts(255))),
        receipt_number=draw(_optional(texts(50))),
        applicant=draw(applicants()),
        summary=draw(_optional(texts(1000))),
        status=draw(st.sampled_from(DossierStatus)),
        channel=draw(st.sampled_from(Channel)),
        submitted_at=draw(_optional(moments())),
        received_at=draw(_optional(moments())),
        due_at=draw(_optional(moments())),
        processed_at=draw(_optional(moments())),
        returned_at=draw(_optional(moments())),
        refused_at=draw(_optional(moments())),
        return_info=draw(_optional(texts(2000))),
        result_delivery=draw(st.sampled_from(ResultDelivery)),
        handling_unit=draw(_optional(texts(255))),
        submission_place=draw(_optional(texts(50))),
        online_payment=draw(st.sampled_from(OnlinePayment)),
        vneid_verified=draw(st.booleans()),
        has_digitized_documents=draw(st.booleans()),
        note=draw(_optional(texts(2000))),
        documents=draw(_several(documents())),
        fees=draw(_several(fees())),
        other_papers=draw(_several(other_papers())),
        supplements=draw(_several(supplements())),
        results=draw(_several(result_documents())),
        progress=draw(_several(progress_steps())),
    )


_CONNECTORS = st.from_regex(r"[a-z0-9][a-z0-9_.\-]{0,62}", fullmatch=True)


@cache
def sources(unit: str | None = None) -> st.SearchStrategy[Source]:
    """Publishers: a connector id and an agency, in the given unit when one is named."""
    return st.builds(Source, connector=_CONNECTORS, agency=agency_codes(unit))


# What each event type's payload holds beside the dossier snapshot.
_PAYLOAD_EXTRAS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "dossier_upserted": st.just({}),
    "status_changed": st.fixed_dictionaries(
        {"previous_status": _optional(st.sampled_from(DossierStatus))}
    ),
    "progress_recorded": st.fixed_dictionaries({"step": progress_steps()}),
    "payment_recorded": st.fixed_dictionaries({"fee": fees(), "paid_at": moments()}),
    "supplement_requested": st.fixed_dictionaries({"supplement": supplements()}),
    "result_returned": st.fixed_dictionaries(
        {"results": st.lists(result_documents(), min_size=1, max_size=3).map(tuple)}
    ),
}


def events(event_types: Collection[str] | None = None) -> st.SearchStrategy[Event]:
    """Any valid event, of one of `event_types` (default: all six)."""
    return _events(st.sampled_from(sorted(event_types or EVENT_TYPES)))


@st.composite
def _events(draw: st.DrawFn, types: st.SearchStrategy[str]) -> Event:
    event_type = draw(types)
    dossier = draw(dossiers())
    event = EVENT_TYPES[event_type].model_validate(
        {
            "event_id": draw(st.uuids()),
            "occurred_at": draw(moments()),
            "source": draw(sources(dossier.code.unit)),
            "dossier_code": dossier.code,
            "seq": draw(st.integers(0, 2**63 - 1)),
            "payload": {"dossier": dossier, **draw(_PAYLOAD_EXTRAS[event_type])},
        }
    )
    return cast(Event, event)


# ---- bodies the bus must refuse --------------------------------------------------------------

_REQUIRED = ("event_id", "occurred_at", "source", "dossier_code", "seq", "payload")


def refused_bodies(valid: dict[str, Any], limit: int) -> st.SearchStrategy[tuple[bytes, str]]:
    """Bodies spoiled from the JSON of one `valid` event, each with the dead-letter reason it
    must get (`x-bus-reason`; "" for garbage, which any refusal of a body fits): garbage,
    not UTF-8, cut short, a required field missing, a value of the wrong kind or out of its
    code list, an agency of another unit, an event type nobody knows, over the body `limit`.
    Reasons come from the body alone: a signature is the test's business."""
    text = json.dumps(valid, ensure_ascii=False)
    body = text.encode()

    def without(key: str) -> tuple[bytes, str]:
        data = json.loads(text)
        del data[key]
        return json.dumps(data).encode(), "contract"

    def with_value(path: tuple[str, ...], value: object) -> tuple[bytes, str]:
        data = json.loads(text)
        inner = data
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = value
        return json.dumps(data, ensure_ascii=False).encode(), "contract"

    other_units = units().filter(lambda unit: unit != valid["source"]["agency"][-3:])
    known = set(EVENT_TYPES)
    return st.one_of(
        # Arbitrary bytes: refused, for whichever reason the body gives ("").
        st.binary(max_size=200).map(lambda raw: (b"{" + raw, "")),
        st.integers(0, len(body) - 1).map(lambda at: (body[:at], "not_json")),
        st.integers(1, len(body) - 1).map(lambda at: (body[:at] + b"\xff" + body[at:], "not_utf8")),
        st.sampled_from(_REQUIRED).map(without),
        st.one_of(st.integers(-(2**31), -1), st.text(max_size=5).map("v{}".format)).map(
            lambda seq: with_value(("seq",), seq)
        ),
        st.integers(-(2**31), 2**31)
        .filter(lambda code: not 1 <= code <= 10)
        .map(lambda code: with_value(("payload", "dossier", "status"), code)),
        other_units.flatmap(agency_codes).map(lambda code: with_value(("source", "agency"), code)),
        st.text(max_size=30)
        .filter(lambda name: name not in known)
        .map(lambda name: (with_value(("event_type",), name)[0], "unknown_type")),
        st.integers(1, 3 * limit).map(lambda more: (body + b" " * (limit + more), "too_large")),
    )
