"""Valid contract objects to start from; each test changes only what it is about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import (
    Applicant,
    Document,
    Dossier,
    DossierStatus,
    Event,
    Fee,
    Progress,
    Source,
    StatusChanged,
    event_from_dict,
)

AGENCY = "000.00.01.H29"
DOSSIER_CODE = f"{AGENCY}-240115-0001"
RECEIVED = datetime(2024, 1, 15, 8, 30, tzinfo=UTC)


def a_dossier(**changes: Any) -> Dossier:
    """A dossier being processed in Hồ Chí Minh City, about 1 KB as JSON."""
    fields: dict[str, Any] = {
        "code": DOSSIER_CODE,
        "procedure_code": "1.000894",
        "procedure_name": "Cấp giấy phép xây dựng nhà ở riêng lẻ",
        "sector_code": "XD",
        "sector_name": "Xây dựng",
        "receipt_number": "BN-0001",
        "applicant": Applicant(
            name="Nguyễn Văn An",
            type=1,
            id_number="001234567889",
            phone="0912345678",
            email="an.nguyen@example.vn",
        ),
        "summary": "Xin cấp phép xây dựng nhà ở tại phường Bến Thành",
        "status": DossierStatus.PROCESSING,
        "channel": 2,
        "submitted_at": RECEIVED - timedelta(days=1),
        "received_at": RECEIVED,
        "due_at": RECEIVED + timedelta(days=15),
        "handling_unit": "Phòng Quản lý đô thị",
        "documents": (
            Document(
                file_id="f-1",
                file_name="don-de-nghi.pdf",
                component_code="TP1",
                url="https://files.example.vn/f-1",
            ),
        ),
        "fees": (Fee(name="Lệ phí cấp phép", stage=1, amount=75000),),
        "progress": (
            Progress(
                handler="Trần Thị Bình",
                title="Chuyên viên",
                handled_at=RECEIVED + timedelta(hours=2),
                department="Phòng Quản lý đô thị",
                content="Thụ lý hồ sơ",
                status=DossierStatus.PROCESSING,
            ),
        ),
    }
    fields.update(changes)
    return Dossier(**fields)


def a_status_changed(seq: int = 1, **changes: Any) -> StatusChanged:
    dossier = changes.pop("dossier", None) or a_dossier()
    return StatusChanged(
        event_id=changes.pop("event_id", uuid.uuid4()),
        occurred_at=changes.pop("occurred_at", RECEIVED + timedelta(hours=3)),
        source=Source(connector="igate-hcm", agency=AGENCY),
        dossier_code=dossier.code,
        seq=seq,
        payload={"dossier": dossier, "previous_status": DossierStatus.RECEIVED},
        **changes,
    )


def an_event_dict(**changes: Any) -> dict[str, Any]:
    """A valid status event as JSON-ready data, for tests that break it on purpose."""
    data = a_status_changed().model_dump(mode="json")
    data.update(changes)
    return data


def rebuilt(data: dict[str, Any]) -> Event:
    return event_from_dict(data)
