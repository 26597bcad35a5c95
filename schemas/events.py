"""Dossier events: one envelope, six payloads, and the decoder every consumer uses.

Every payload carries the dossier's full snapshot as of its `seq`. Events arrive out of order
and the sync service applies only the newest `seq` per dossier; if an event carried only what
changed, dropping a stale one would lose that change. With snapshots, the newest event alone
makes the portal right. The other payload fields say what happened, for operators and metrics.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Self
from uuid import UUID

from pydantic import (
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from schemas.base import Contract, Instant
from schemas.codes import DossierStatus
from schemas.dossier import Dossier, Fee, Progress, ResultDocument, Supplement
from schemas.errors import contract_error
from schemas.identifiers import AgencyCode, DossierCode

SCHEMA_VERSION: Final = 1

ConnectorId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,62}$")]


class Source(Contract):
    """Who published the event: a connector, on behalf of an agency."""

    connector: ConnectorId
    agency: AgencyCode


class DossierUpsertedPayload(Contract):
    dossier: Dossier


class StatusChangedPayload(Contract):
    dossier: Dossier
    previous_status: DossierStatus | None = None


class ProgressRecordedPayload(Contract):
    dossier: Dossier
    step: Progress


class PaymentRecordedPayload(Contract):
    dossier: Dossier
    fee: Fee
    paid_at: Instant


class SupplementRequestedPayload(Contract):
    dossier: Dossier
    supplement: Supplement


class ResultReturnedPayload(Contract):
    dossier: Dossier
    results: tuple[ResultDocument, ...] = Field(min_length=1)


class _Envelope(Contract):
    event_id: UUID
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: Instant
    source: Source
    dossier_code: DossierCode
    seq: int = Field(ge=0, lt=2**63)

    @property
    def unit(self) -> str:
        return self.dossier_code.unit

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.source.agency.unit != self.dossier_code.unit:
            raise ValueError(
                f"dossier {self.dossier_code} belongs to unit {self.dossier_code.unit}, "
                f"but the source agency {self.source.agency} is in unit {self.source.agency.unit}"
            )
        dossier: Dossier = self.payload.dossier  # type: ignore[attr-defined]
        if dossier.code != self.dossier_code:
            raise ValueError(
                f"payload.dossier.code {dossier.code} differs from dossier_code {self.dossier_code}"
            )
        return self


class DossierUpserted(_Envelope):
    event_type: Literal["dossier_upserted"] = "dossier_upserted"
    payload: DossierUpsertedPayload


class StatusChanged(_Envelope):
    event_type: Literal["status_changed"] = "status_changed"
    payload: StatusChangedPayload


class ProgressRecorded(_Envelope):
    event_type: Literal["progress_recorded"] = "progress_recorded"
    payload: ProgressRecordedPayload


class PaymentRecorded(_Envelope):
    event_type: Literal["payment_recorded"] = "payment_recorded"
    payload: PaymentRecordedPayload


class SupplementRequested(_Envelope):
    event_type: Literal["supplement_requested"] = "supplement_requested"
    payload: SupplementRequestedPayload


class ResultReturned(_Envelope):
    event_type: Literal["result_returned"] = "result_returned"
    payload: ResultReturnedPayload


Event = Annotated[
    DossierUpserted
    | StatusChanged
    | ProgressRecorded
    | PaymentRecorded
    | SupplementRequested
    | ResultReturned,
    Field(discriminator="event_type"),
]

EVENT_TYPES: dict[str, type[_Envelope]] = {
    model.model_fields["event_type"].default: model
    for model in (
        DossierUpserted,
        StatusChanged,
        ProgressRecorded,
        PaymentRecorded,
        SupplementRequested,
        ResultReturned,
    )
}

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def decode_event(data: bytes | str) -> Event:
    """Parse and validate one event from JSON; anything wrong raises ContractError."""
    try:
        # Strict: the JSON must already have the contract's types ("4" is not a status), so
        # Python accepts exactly what the exported JSON Schema accepts.
        return _ADAPTER.validate_json(data, strict=True)
    except ValidationError as error:
        raise contract_error(error, EVENT_TYPES.values()) from None


def encode_event(event: Event) -> bytes:
    # The model's own serializer: the union adapter would first look up which member it is.
    return event.__pydantic_serializer__.to_json(event)


def event_from_dict(data: Any) -> Event:
    """Validate an event from Python data (a connector's mapping output).

    Lax, unlike `decode_event`: a mapping may hand over ISO strings for datetimes or "4" for
    a status, and gets the typed model; what goes on the wire is then always strict JSON.
    """
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as error:
        raise contract_error(error, EVENT_TYPES.values()) from None
