"""The dossier contract: what connectors publish, the bus carries and the portal receives.

Importable on its own, with no broker or service: a connector team can validate against it.
"""

from schemas.codes import (
    ApplicantIdType,
    ApplicantType,
    Channel,
    DossierStatus,
    FeeCollectionStage,
    FeeKind,
    OnlinePayment,
    ResultDelivery,
    ServiceLevel,
    StatusKind,
    SupplementStatus,
)
from schemas.dossier import (
    Applicant,
    Document,
    Dossier,
    Fee,
    OtherPaper,
    Progress,
    ResultDocument,
    Supplement,
)
from schemas.errors import ContractError, Problem
from schemas.events import (
    EVENT_TYPES,
    DossierUpserted,
    Event,
    PaymentRecorded,
    ProgressRecorded,
    ResultReturned,
    Source,
    StatusChanged,
    SupplementRequested,
    decode_event,
    encode_event,
    event_from_dict,
)
from schemas.identifiers import AgencyCode, DossierCode, ProcedureCode
from schemas.lifecycle import Verdict, verdict
from schemas.personal import Personal, masked

__all__ = [
    "EVENT_TYPES",
    "AgencyCode",
    "Applicant",
    "ApplicantIdType",
    "ApplicantType",
    "Channel",
    "ContractError",
    "Document",
    "Dossier",
    "DossierCode",
    "DossierStatus",
    "DossierUpserted",
    "Event",
    "Fee",
    "FeeCollectionStage",
    "FeeKind",
    "OnlinePayment",
    "OtherPaper",
    "PaymentRecorded",
    "Personal",
    "Problem",
    "ProcedureCode",
    "Progress",
    "ProgressRecorded",
    "ResultDelivery",
    "ResultDocument",
    "ResultReturned",
    "ServiceLevel",
    "Source",
    "StatusChanged",
    "StatusKind",
    "Supplement",
    "SupplementRequested",
    "SupplementStatus",
    "Verdict",
    "decode_event",
    "encode_event",
    "event_from_dict",
    "masked",
    "verdict",
]
