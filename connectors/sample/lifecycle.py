"""Seeded lifecycles of dossiers at one agency, each as the contract events a connector sends.

`lifecycles(agency, count, seed=..., start=...)` lists, for each dossier, its events in `seq`
order (1, 2, 3, …): `dossier_upserted` when it appears, then one event per step, each one
carrying the whole dossier after that step (docs/contract.md). Statuses take DOMAIN.md's
usual moves only, so `schemas.lifecycle.verdict` judges every move usual:

    submitted online    1 ─▶ 2 ─▶ 4 ─▶ 9 ─▶ 10      or refused at intake: 1 ─▶ 3
    at the desk, by post     2 ─▶ 4 ─▶ 9 ─▶ 10
    while processing    4 ─▶ 5 ─▶ 4     documents requested, then supplied (the clock stops)
                        4 ─▶ 6 ─▶ 4|9   a fee or tax falls due, then is paid
                        4 ─▶ 8          processing stopped
    from any open or paused status ─▶ 7  withdrawn by the applicant

A step's event type says what happened: a request for documents is `supplement_requested`
and a payment `payment_recorded`, though the status moves with them; a step that only moves
the status is `status_changed`. Every step but the applicant's own online submission appends
an officer's progress step, so progress only grows and its moments strictly increase. Some
dossiers are still under way when the sample ends: their events stop early.

One `random.Random(seed)` draws everything, dossier after dossier: the same seed gives the
same events, and the first dossiers of a longer run are those of a shorter one.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from connectors.sample import people
from connectors.sample.dossier import MINUTE, LocalDossier, Staff
from connectors.sample.procedures import Procedure
from schemas import (
    AgencyCode,
    Channel,
    Document,
    DossierUpserted,
    Event,
    Fee,
    FeeCollectionStage,
    FeeKind,
    OnlinePayment,
    OtherPaper,
    PaymentRecorded,
    ProgressRecorded,
    ResultDelivery,
    ResultDocument,
    ResultReturned,
    Source,
    Supplement,
    SupplementRequested,
    SupplementStatus,
)
from schemas import DossierStatus as S
from schemas.wire import VIETNAM_TIME

HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

# How often each turn is taken, by the dossiers that reach it.
CHANNELS: Final = (Channel.ONLINE, Channel.IN_PERSON, Channel.POSTAL)
CHANNEL_WEIGHTS: Final = (0.55, 0.40, 0.05)
REFUSED: Final = 0.05  # an online submission refused at intake
WITHDRAWN: Final = 0.02  # at each point where the applicant may withdraw
SUPPLEMENT: Final = 0.15  # documents requested while processing
STOPPED: Final = 0.02
NEVER_SUPPLIED: Final = 0.1  # of supplement requests: the applicant withdraws instead
DECIDED_ON_PAYMENT: Final = 0.3  # a payment that lets the officer decide at once
RETURNED: Final = 0.95  # decided dossiers whose result is handed over
UNFINISHED: Final = 0.12  # dossiers still under way when the sample ends
ARRIVALS: Final = 10 * MINUTE  # mean time between two dossiers

REVIEW_STEPS: Final = (
    "Thẩm định hồ sơ",
    "Xác minh thông tin với cơ quan liên quan",
    "Dự thảo kết quả giải quyết",
    "Trình lãnh đạo xem xét",
)


def lifecycles(
    unit_agency: str,
    count: int,
    *,
    seed: int,
    start: datetime,
    connector: str | None = None,
) -> list[list[Event]]:
    """`count` dossiers of the agency `unit_agency` (e.g. 000.00.01.H29), submitted from
    `start` on, about one every 10 minutes: each dossier's events in seq order. `connector`
    is the events' source connector, by default `sample-<unit>` (e.g. sample-h29)."""
    if start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if count < 0:
        raise ValueError("count must not be negative")
    agency = AgencyCode.parse(unit_agency)
    source = Source(connector=connector or f"sample-{agency.unit.lower()}", agency=agency)
    rng = random.Random(seed)
    staff = Staff(rng)
    clock = start.astimezone(UTC).replace(microsecond=0)
    numbers: dict[str, int] = {}  # dossiers numbered per day, as MaHoSo's sequence is
    result = []
    for _ in range(count):
        clock += timedelta(seconds=round(rng.expovariate(1 / ARRIVALS)))
        day = clock.astimezone(VIETNAM_TIME).strftime("%y%m%d")
        numbers[day] = numbers.get(day, 0) + 1
        dossier = LocalDossier(rng, source, staff, f"{agency}-{day}-{numbers[day]:04d}", clock)
        _live(dossier)
        events = dossier.events
        if rng.random() < UNFINISHED:
            events = events[: rng.randint(1, len(events))]
        result.append(events)
    return result


# ---- the steps, in the order a dossier meets them ------------------------------------------

SUPPLEMENT_REASONS: Final = (
    "Bổ sung bản sao có chứng thực giấy tờ tùy thân",
    "Bổ sung giấy tờ chứng minh nơi cư trú",
    "Nộp lại tờ khai theo đúng mẫu quy định",
    "Bổ sung bản vẽ, tài liệu kỹ thuật còn thiếu",
)
OBLIGATIONS: Final = ("Lệ phí trước bạ", "Phí thẩm định hồ sơ", "Tiền sử dụng đất")


def _live(d: LocalDossier) -> None:
    """The whole life of one dossier, as far as it goes."""
    _appear(d)
    if d.status is S.SUBMITTED:
        d.wait(6 * HOUR)
        if d.chance(REFUSED):
            note = "Hồ sơ chưa đầy đủ thành phần theo quy định"
            d.move(S.REFUSED, f"Từ chối tiếp nhận: {note}", refused_at=d.now, note=note)
            return
        if d.chance(WITHDRAWN):
            _withdraw(d)
            return
        d.move(S.RECEIVED, "Tiếp nhận hồ sơ nộp trực tuyến", **_reception(d))
        if d.procedure.fee:
            d.wait(4 * HOUR)
            _pay(d, d.fields["fees"][0], "Xác nhận thanh toán lệ phí trực tuyến", d.status)
    if d.chance(WITHDRAWN):
        _withdraw(d)
        return
    d.wait(4 * HOUR)
    d.move(S.PROCESSING, "Chuyển hồ sơ đến bộ phận chuyên môn xử lý")
    if _process(d) and d.chance(RETURNED):
        d.wait(DAY)
        by_post = d.fields["result_delivery"] is ResultDelivery.BY_POST
        content = "Gửi kết quả qua dịch vụ bưu chính công ích" if by_post else "Trả kết quả"
        results = d.fields["results"]
        d.step(
            ResultReturned,
            content,
            payload={"results": results},
            status=S.RETURNED,
            returned_at=d.now,
        )


def _appear(d: LocalDossier) -> None:
    """The dossier is submitted: online (status 1), or received at the desk or by post (2)."""
    rng, p, unit = d.rng, d.procedure, d.source.agency.unit
    channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
    if p.for_enterprises:
        applicant = people.enterprise(rng, unit)
    else:
        applicant = people.citizen(rng, unit, year=d.now.year)
    by_post = channel is Channel.POSTAL or (channel is Channel.ONLINE and d.chance(0.2))
    documents = tuple(_document(d, number, paper) for number, paper in enumerate(p.papers, 1))
    province = people.province_label(unit)
    d.fields = {
        "code": d.code,
        "procedure_code": p.code,
        "procedure_name": p.name,
        "sector_code": p.sector_code,
        "sector_name": p.sector_name,
        "applicant": applicant,
        "summary": p.name,
        "status": S.SUBMITTED if channel is Channel.ONLINE else S.RECEIVED,
        "channel": channel,
        "submitted_at": d.now,
        "handling_unit": f"{p.department}, {province}" if province else p.department,
        "result_delivery": ResultDelivery.BY_POST if by_post else ResultDelivery.BY_HAND,
        "return_info": f"Gửi kết quả đến: {people.address(rng, unit)}" if by_post else None,
        "vneid_verified": channel is Channel.ONLINE and d.chance(0.7),
        "has_digitized_documents": any(document.digitized for document in documents),
        "documents": documents,
        "fees": _reception_fees(p),
        "other_papers": (
            (OtherPaper(name="Bản sao giấy tờ tùy thân", quantity=rng.randint(1, 2), kind="BS"),)
            if d.chance(0.2)
            else ()
        ),
    }
    if channel is Channel.ONLINE:
        d.step(DossierUpserted, None)  # the applicant's own act: no officer's step
    else:
        place = "qua dịch vụ bưu chính công ích" if by_post else "trực tiếp tại Bộ phận Một cửa"
        d.step(DossierUpserted, f"Tiếp nhận hồ sơ {place}", **_reception(d))


def _reception_fees(p: Procedure) -> tuple[Fee, ...]:
    if not p.fee:
        return ()
    stage = FeeCollectionStage.AT_RECEPTION
    return (Fee(name=p.fee_name, code=f"LP.{p.sector_code}", stage=stage, amount=p.fee),)


def _document(d: LocalDossier, number: int, paper: str) -> Document:
    file_id = f"TL-{d.code[14:]}-{number}"
    return Document(
        file_id=file_id,
        file_name=f"{_slug(paper)}.pdf",
        component_code=f"TP{number}",
        url=f"https://motcua-{d.source.agency.unit.lower()}.example/tep/{file_id}.pdf",
        digitized=d.chance(0.6),
        reused=d.chance(0.2),
        from_national_repository=d.chance(0.1),
    )


def _reception(d: LocalDossier) -> dict[str, Any]:
    """What reception sets: its moment, the receipt, and the due date after it."""
    return {
        "received_at": d.now,
        "receipt_number": f"BN-{d.code[14:]}",
        "due_at": _after_working_days(d.now, d.procedure.days),
    }


def _process(d: LocalDossier) -> bool:
    """From 4 (processing) until decided, True; False when it ended otherwise."""
    pace = d.procedure.days * DAY / 4  # mean time an officer takes for one step
    _review(d, pace)
    if d.chance(SUPPLEMENT):
        if not _supplement(d, pace):
            return False
        _review(d, pace)
    if d.chance(STOPPED):
        d.wait(pace)
        note = "Hồ sơ không đủ điều kiện giải quyết theo quy định"
        d.move(S.STOPPED, f"Dừng xử lý: {note}", by="leader", processed_at=d.now, note=note)
        return False
    if d.chance(WITHDRAWN):
        _withdraw(d)
        return False
    if d.chance(d.procedure.obligation):
        d.wait(pace)
        fee = Fee(
            name=d.rng.choice(OBLIGATIONS),
            stage=FeeCollectionStage.AT_RESULT,
            amount=d.rng.randint(5, 500) * 10_000,
            kind=FeeKind.APPRAISAL,
        )
        d.move(
            S.PAYMENT_REQUESTED,
            f"Thông báo nghĩa vụ tài chính: {fee.name}",
            by="specialist",
            fees=(*d.fields["fees"], fee),
        )
        d.wait(2 * DAY)
        if d.chance(DECIDED_ON_PAYMENT):
            _pay(
                d,
                fee,
                "Đã hoàn thành nghĩa vụ tài chính; ký ban hành kết quả",
                S.DECIDED,
                processed_at=d.now,
                results=(_result(d),),
            )
            return True
        _pay(d, fee, "Đã hoàn thành nghĩa vụ tài chính; tiếp tục xử lý", S.PROCESSING)
    d.wait(pace)
    d.move(
        S.DECIDED,
        "Phê duyệt, ký ban hành kết quả",
        by="leader",
        processed_at=d.now,
        results=(_result(d),),
    )
    return True


def _review(d: LocalDossier, pace: float) -> None:
    """The officers' steps while processing: none, one or two."""
    for _ in range(d.rng.choice((0, 1, 1, 2))):
        d.wait(pace)
        d.step(ProgressRecorded, d.rng.choice(REVIEW_STEPS), by="specialist")


def _supplement(d: LocalDossier, pace: float) -> bool:
    """Documents requested (4 → 5), then supplied (5 → 4), True; False when withdrawn."""
    d.wait(pace)
    due = d.fields["due_at"]
    asked = Supplement(
        requested_by=d.rng.choice(d.staff.specialists),
        content=d.rng.choice(SUPPLEMENT_REASONS),
        requested_at=d.now,
        previous_due_at=due,
    )
    before = d.fields.get("supplements", ())
    d.step(
        SupplementRequested,
        f"Yêu cầu bổ sung hồ sơ: {asked.content}",
        by="specialist",
        payload={"supplement": asked},
        status=S.SUPPLEMENT_REQUESTED,
        supplements=(*before, asked),
    )
    d.wait(3 * DAY)
    if d.chance(NEVER_SUPPLIED):
        _withdraw(d)
        return False
    new_due = due + (d.now - asked.requested_at)  # the clock stood still meanwhile
    supplied = Supplement(
        **{
            **dict(asked),
            "received_at": d.now,
            "status": SupplementStatus.SUPPLIED,
            "new_due_at": new_due,
        }
    )
    d.move(S.PROCESSING, "Tiếp nhận hồ sơ bổ sung", supplements=(*before, supplied), due_at=new_due)
    return True


def _pay(d: LocalDossier, fee: Fee, content: str, status: S, **changes: Any) -> None:
    """The applicant pays `fee`, online; the status may move with it (6 → 4 or 9)."""
    where = OnlinePayment.NATIONAL_PORTAL if d.chance(0.7) else OnlinePayment.LOCAL_PORTAL
    d.step(
        PaymentRecorded,
        content,
        payload={"fee": fee, "paid_at": d.now},
        status=status,
        online_payment=where,
        **changes,
    )


def _withdraw(d: LocalDossier) -> None:
    d.wait(DAY)
    note = "Người nộp hồ sơ đề nghị rút hồ sơ"
    d.move(S.WITHDRAWN, "Công dân yêu cầu rút hồ sơ", note=note)


def _result(d: LocalDossier) -> ResultDocument:
    number = d.code[14:]
    return ResultDocument(
        name=d.procedure.result,
        component_code="KQ1",
        document_id=f"KQ-{number}",
        url=f"https://motcua-{d.source.agency.unit.lower()}.example/ket-qua/KQ-{number}.pdf",
        result_code=f"{d.procedure.sector_code}/{number}",
    )


def _after_working_days(moment: datetime, days: int) -> datetime:
    """`days` working days (Monday to Friday, in Vietnam) after `moment`, same time of day."""
    local = moment.astimezone(VIETNAM_TIME)
    while days > 0:
        local += timedelta(days=1)
        if local.weekday() < 5:
            days -= 1
    return local.astimezone(UTC)


def _slug(text: str) -> str:
    """A file name from a paper's name: "Tờ khai đăng ký" → "to-khai-dang-ky"."""
    return "-".join(people.plain(text).lower().replace(",", " ").split())
