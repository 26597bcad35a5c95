"""The normalized dossier: one shape for every vendor's system.

Field names are English; `docs/contract.md` pairs each with its national portal wire field.
Documents and results are links the portal fetches, never file bodies.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from schemas.base import Code, Contract, Link, Name, Text, Timestamp
from schemas.codes import (
    ApplicantIdType,
    ApplicantType,
    Channel,
    DossierStatus,
    FeeCollectionStage,
    FeeKind,
    OnlinePayment,
    ResultDelivery,
    SupplementStatus,
)
from schemas.identifiers import DossierCode, ProcedureCode
from schemas.personal import Personal

_CITIZEN_ID = re.compile(r"[0-9]{12}|[0-9]{9}")


class Applicant(Contract):
    """The dossier's owner (chủ hồ sơ): a person or an organisation."""

    name: Annotated[Name, Personal.NAME]
    type: ApplicantType
    code: Code | None = None
    id_number: Annotated[
        str | None, StringConstraints(min_length=1, max_length=40), Personal.ID_NUMBER
    ] = None
    phone: Annotated[
        str | None, StringConstraints(pattern=r"^\+?[0-9][0-9 .\-]{5,19}$"), Personal.PHONE
    ] = None
    email: Annotated[
        str | None, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254), Personal.EMAIL
    ] = None
    fax: Annotated[str | None, StringConstraints(min_length=1, max_length=20), Personal.PHONE] = (
        None
    )
    other_info: Annotated[Text | None, Personal.TEXT] = None

    @model_validator(mode="after")
    def _citizen_id_is_a_real_id(self) -> Applicant:
        if (
            self.type is ApplicantType.CITIZEN
            and self.id_number is not None
            and _CITIZEN_ID.fullmatch(self.id_number) is None
        ):
            # The message must not repeat the number: errors end up in logs.
            raise ValueError(
                "a citizen's id_number must be 12 digits (căn cước) or 9 digits (old id card)"
            )
        return self

    @property
    def id_type(self) -> ApplicantIdType | None:
        """LoaiDinhDanh, derived from the number: the dossier record has no field for it."""
        if self.type is not ApplicantType.CITIZEN or self.id_number is None:
            return None
        if len(self.id_number) == 12:
            return ApplicantIdType.CITIZEN_IDENTITY
        return ApplicantIdType.OLD_IDENTITY_CARD


class Document(Contract):
    """A submitted document (TaiLieuNop)."""

    file_id: Code
    file_name: Name
    component_code: Code | None = None
    url: Link
    digitized: bool = False
    reused: bool = False
    from_national_repository: bool = False
    deleted: bool = False


class Fee(Contract):
    """A fee or charge (DanhSachLePhi); amounts in đồng."""

    name: Name
    code: Code | None = None
    stage: FeeCollectionStage
    amount: int = Field(ge=0, le=10**13)
    kind: FeeKind = FeeKind.NORMAL


class OtherPaper(Contract):
    """A paper handed over without a file (DanhSachTepDinhKemKhac)."""

    name: Name
    quantity: int = Field(ge=1, le=10_000)
    kind: Code | None = None


class Supplement(Contract):
    """A request for more documents (DanhSachHoSoBoSung); the due date moves with it."""

    requested_by: Name
    content: Text
    requested_at: Timestamp
    received_at: Timestamp | None = None
    status: SupplementStatus = SupplementStatus.REQUESTED
    previous_due_at: Timestamp | None = None
    new_due_at: Timestamp | None = None


class ResultDocument(Contract):
    """A result document (DanhSachGiayToKetQua)."""

    name: Name
    component_code: Code | None = None
    document_id: Code
    url: Link
    result_code: Code | None = None


class Progress(Contract):
    """One processing step (the CapNhatTienDoHoSoMC record)."""

    handler: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    title: Name | None = None
    handled_at: Timestamp
    department: Name | None = None
    content: Text
    status: DossierStatus
    started_at: Timestamp | None = None
    due_at: Timestamp | None = None


class Dossier(Contract):
    """A dossier as the national portal holds it, with its processing history."""

    code: DossierCode
    procedure_code: ProcedureCode
    procedure_name: Text
    sector_code: Code | None = None
    sector_name: Name | None = None
    receipt_number: Code | None = None
    applicant: Applicant
    summary: Annotated[str | None, StringConstraints(min_length=1, max_length=1000)] = None
    status: DossierStatus
    channel: Channel
    submitted_at: Timestamp | None = None
    received_at: Timestamp | None = None
    due_at: Timestamp | None = None
    processed_at: Timestamp | None = None
    returned_at: Timestamp | None = None
    refused_at: Timestamp | None = None
    return_info: Annotated[Text | None, Personal.TEXT] = None  # often a postal address
    result_delivery: ResultDelivery = ResultDelivery.BY_HAND
    handling_unit: Name | None = None
    submission_place: Code | None = None
    online_payment: OnlinePayment = OnlinePayment.NOT_ONLINE
    vneid_verified: bool = False
    has_digitized_documents: bool = False
    note: Text | None = None
    documents: tuple[Document, ...] = ()
    fees: tuple[Fee, ...] = ()
    other_papers: tuple[OtherPaper, ...] = ()
    supplements: tuple[Supplement, ...] = ()
    results: tuple[ResultDocument, ...] = ()
    progress: tuple[Progress, ...] = ()
