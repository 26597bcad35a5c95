"""From a local record to a contract event, as the config's `[mapping]` says.

The mapping renames and converts, it never guesses: a local status with no national code, a
time that is no time, a value the contract refuses, each is a `MappingError` whose message
names the local field, and the record goes to the reject store instead of the broker.

- Naive local times ("2025-07-01 08:30:00") are read in the connector's time zone; times
  with an offset keep it. The contract keeps whole seconds in UTC.
- Nested lists arrive as lists of mappings, or as JSON text (CSV cells, SQL TEXT columns).
- `seq` comes from the record (`[connector.seq]`), so the same version of a record always
  gives the same event, and its `event_id` is derived from (connector, dossier, seq): a
  record read twice (a cursor re-read, a crash before the cursor moved) is one event.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from connectors.config import ConnectorConfig, SeqRule
from connectors.source import Record
from schemas import Event, event_from_dict
from schemas.errors import ContractError
from schemas.personal import Personal, kind_at, mask_text

_EVENT_IDS: Final = uuid.UUID("5b0f3c52-8a53-4c1e-9a57-1c2f6d0e7a11")  # uuid5 namespace
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_FIELDS: Final = frozenset(
    {"submitted_at", "received_at", "due_at", "processed_at", "returned_at", "refused_at"}
)
_LIST_TIME_FIELDS: Final = frozenset(
    {"requested_at", "received_at", "previous_due_at", "new_due_at", "handled_at",
     "started_at", "due_at", "paid_at"}
)  # fmt: skip


class MappingError(ValueError):
    """A record the contract cannot take; the message names local fields, values masked."""

    def __init__(self, message: str) -> None:
        # Personal fields come masked from the contract; a person's number in a field that
        # is not personal (an identity number in the wrong column) is masked here.
        super().__init__(mask_text(message))


class RecordMapping:
    """The config's mapping, worked out once, applied to every record."""

    def __init__(self, config: ConnectorConfig) -> None:
        table = config.mapping
        self._connector = config.connector.name
        self._agency = str(config.connector.agency)
        self._zone = config.connector.zone
        self._seq = config.connector.seq
        # Worked out once, so that mapping a record only reads and converts.
        self._fields = _plan(table.fields, _TIME_FIELDS, {"status"})
        self._lists = tuple(
            (name, mapping.from_, _plan(mapping.fields, _LIST_TIME_FIELDS,
                                         {"status"} if name == "progress" else set()))
            for name, mapping in table.lists.items()
        )  # fmt: skip
        self._status = table.status
        self._constants = table.constants
        self._local_of = dict(table.fields)
        self._personal = {
            local: kind
            for path, local in table.fields.items()
            if (kind := _personal(path)) is not None
        }

    @property
    def code_field(self) -> str:
        return self._local_of.get("code", "code")

    def seq(self, record: Record) -> int:
        """The record's version as the event's seq."""
        return _seq(record, self._seq, self._zone)

    def dossier_code(self, record: Record) -> str:
        value = record.get(self.code_field)
        return str(value) if value is not None else ""

    def dossier(self, record: Record) -> dict[str, Any]:
        """The contract dossier (as data) the record describes; MappingError if it cannot."""
        data: dict[str, Any] = {}
        for path, value in self._constants.items():
            _put(data, path, value)
        self._converted(record, self._fields, into=data)
        for name, local, plan in self._lists:
            data[name] = self._list(record.get(local), local, plan)
        return data

    def _converted(
        self, record: Mapping[str, Any], plan: _Plan, into: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {} if into is None else into
        for head, rest, local, kind in plan:
            value = record.get(local)
            if kind is _Kind.STATUS:
                value = self._national_status(value, local)
            elif kind is _Kind.TIME:
                value = _moment(value, self._zone, local)
            if value is None or value == "":
                continue
            if rest:
                data.setdefault(head, {})[rest] = value
            else:
                data[head] = value
        return data

    def event(self, record: Record, previous_status: int | None) -> Event:
        """The event for this version of the record: `status_changed` when its status moved
        since the last one sent, else `dossier_upserted`."""
        dossier = self.dossier(record)
        code = str(dossier.get("code", ""))
        seq = self.seq(record)
        status = dossier.get("status")
        moved = previous_status is not None and status is not None and status != previous_status
        data: dict[str, Any] = {
            "event_type": "status_changed" if moved else "dossier_upserted",
            "event_id": uuid.uuid5(_EVENT_IDS, f"{self._connector}/{code}/{seq}"),
            "occurred_at": _occurred_at(dossier),
            "source": {"connector": self._connector, "agency": self._agency},
            "dossier_code": code,
            "seq": seq,
            "payload": {"dossier": dossier},
        }
        if moved:
            data["payload"]["previous_status"] = previous_status
        try:
            return event_from_dict(data)
        except ContractError as error:
            raise MappingError(self._retold(error)) from None

    def masked(self, record: Record) -> dict[str, Any]:
        """The record with the values of personal fields masked, for the reject store; the
        other values are masked as free text: a refused record may hold an identity number
        in any column."""
        shown: dict[str, Any] = {}
        for key, value in record.items():
            kind = self._personal.get(key)
            shown[key] = (
                kind.mask(str(value)) if kind is not None and value else _text_masked(value)
            )
        return shown

    def _national_status(self, value: object, local: str) -> int:
        national = self._status.get(str(value)) if value is not None else None
        if national is None:
            raise MappingError(
                f"{local}: local status {value!r} has no national code in [mapping.status]"
            )
        return national

    def _list(self, raw: object, local: str, plan: _Plan) -> list[dict[str, Any]]:
        if raw is None or raw == "":
            return []
        if isinstance(raw, str | bytes):
            try:
                raw = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise MappingError(f"{local}: not a JSON list") from None
        # dict first: the ABC check is slow, and nearly every record is a plain dict.
        if not isinstance(raw, list) or not all(
            type(item) is dict or isinstance(item, Mapping) for item in raw
        ):
            raise MappingError(f"{local}: must be a list of records")
        entries = []
        for index, item in enumerate(raw):
            try:
                entries.append(self._converted(item, plan))
            except MappingError as error:
                raise MappingError(f"{local}[{index}].{error}") from None
        return entries

    def _retold(self, error: ContractError) -> str:
        """The contract's problems in local field names, where a field maps to one."""
        lines = []
        for problem in error.problems:
            path = problem.field.removeprefix("payload.dossier.")
            for tag in ("dossier_upserted.", "status_changed."):
                path = path.removeprefix(tag).removeprefix("payload.dossier.")
            local = self._local_of.get(path)
            where = f"{local} ({path})" if local else problem.field
            lines.append(f"{where}: {problem.value} — {problem.rule}")
        return "; ".join(lines)


def _text_masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {key: _text_masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_text_masked(item) for item in value]
    return value


class _Kind(Enum):
    PLAIN = "plain"
    STATUS = "status"  # a local status code, looked up in [mapping.status]
    TIME = "time"  # a local time, read in the connector's zone


_Plan = tuple[tuple[str, str, str, _Kind], ...]  # (head, rest of the path, local name, kind)


def _plan(fields: Mapping[str, str], times: frozenset[str], statuses: set[str]) -> _Plan:
    plan = []
    for path, local in fields.items():
        head, _, rest = path.partition(".")
        kind = _Kind.STATUS if path in statuses else _Kind.TIME if path in times else _Kind.PLAIN
        plan.append((head, rest, local, kind))
    return tuple(plan)


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        data.setdefault(head, {})[rest] = value
    else:
        data[head] = value


def _moment(value: object, zone: ZoneInfo, local: str) -> datetime | None:
    """The moment a local time names, in UTC (the contract's zone: converting here spares
    the contract's validator the work)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _in_utc(value, zone)
    try:
        return _parsed(str(value), zone)
    except ValueError:
        raise MappingError(
            f"{local}: {str(value)[:40]!r} is not a time (e.g. 2025-07-01 08:30:00)"
        ) from None


@functools.lru_cache(maxsize=8_192)
def _parsed(text: str, zone: ZoneInfo) -> datetime:
    # A dossier's times come back in every version of its record: each is parsed once.
    return _in_utc(datetime.fromisoformat(text), zone)


def _in_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)).astimezone(UTC)


def _seq(record: Record, rule: SeqRule, zone: ZoneInfo) -> int:
    value = record.get(rule.field)
    if rule.from_ == "timestamp":
        moment = _moment(value, zone, rule.field)
        if moment is None:
            raise MappingError(f"{rule.field}: missing, and seq is derived from it")
        return (moment - _EPOCH) // _MICROSECOND
    try:
        seq = int(str(value))
    except ValueError:
        raise MappingError(f"{rule.field}: {value!r} is not a version number (seq)") from None
    if seq < 0:
        raise MappingError(f"{rule.field}: {seq} is negative; seq counts up from 0")
    return seq


_MICROSECOND: Final = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _occurred_at(dossier: dict[str, Any]) -> datetime:
    """When the version happened: its newest known moment, else now."""
    moments = [v for k, v in dossier.items() if k in _TIME_FIELDS and isinstance(v, datetime)]
    for step in dossier.get("progress", ()):
        handled = step.get("handled_at")
        if isinstance(handled, datetime):
            moments.append(handled)
    return max(moments, default=datetime.now(UTC))


def _personal(path: str) -> Personal | None:
    from schemas import Dossier

    return kind_at(Dossier, path.split("."))
