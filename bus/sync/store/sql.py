"""The SQL both backends speak, and how a row becomes column values and back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from bus.sync.store import AppliedRow


def headers_json(headers: dict[str, Any]) -> bytes:
    return orjson.dumps(headers, default=header_value)


def header_value(value: object) -> object:
    # AMQP tables can hold bytes and decimals; the bus writes neither, but a header a broker
    # added must not make the state unwritable. Both come back as text.
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store a header value of type {type(value).__name__}")


SCHEMA = """
CREATE TABLE IF NOT EXISTS dossier_state (
    dossier_code   TEXT PRIMARY KEY,
    unit           TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    progress_count INTEGER NOT NULL,
    on_portal      BOOLEAN NOT NULL,
    applied_at     {moment} NOT NULL,
    body           {blob} NOT NULL,
    message_id     TEXT,
    type           TEXT,
    app_id         TEXT,
    timestamp      BIGINT,
    headers        {json} NOT NULL
);
CREATE INDEX IF NOT EXISTS dossier_state_unit_applied
    ON dossier_state (unit, applied_at, dossier_code);
CREATE TABLE IF NOT EXISTS in_doubt (
    dossier_code   TEXT PRIMARY KEY,
    seq            BIGINT NOT NULL
);
"""

# Every column from the newer row, but only when it is newer: the guard, in SQL.
UPSERT = """
INSERT INTO dossier_state VALUES ({marks})
ON CONFLICT (dossier_code) DO UPDATE SET
    unit = excluded.unit, seq = excluded.seq, progress_count = excluded.progress_count,
    on_portal = excluded.on_portal, applied_at = excluded.applied_at, body = excluded.body,
    message_id = excluded.message_id, type = excluded.type, app_id = excluded.app_id,
    timestamp = excluded.timestamp, headers = excluded.headers
WHERE excluded.seq > dossier_state.seq
"""

# A dossier in doubt keeps the highest seq that may have reached the portal.
DOUBT = """
INSERT INTO in_doubt VALUES ({mark}, {mark})
ON CONFLICT (dossier_code) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > in_doubt.seq
"""

# Applying a seq at least as high settles the doubt: the portal holds nothing newer from us.
SETTLE = "DELETE FROM in_doubt WHERE dossier_code = {mark} AND seq <= {mark}"

COLUMNS = (
    "dossier_code, unit, seq, progress_count, on_portal, applied_at,"
    " body, message_id, type, app_id, timestamp, headers"
)


def to_columns(row: AppliedRow, applied_at: object) -> tuple[object, ...]:
    """A row's column values, in the table's order."""
    headers = headers_json(row.headers).decode()
    return (row.dossier_code, row.unit, row.seq, row.progress_count, row.on_portal, applied_at,
            row.body, row.message_id, row.type, row.app_id, row.timestamp, headers)  # fmt: skip


def from_columns(values: Sequence[Any], applied_at: datetime) -> AppliedRow:
    """The row that column values read back (`values[5]`, applied_at, in its backend's form)."""
    code, unit, seq, progress, on_portal, _, body, message_id, type_, app_id, timestamp, headers = (
        values
    )
    return AppliedRow(
        code, unit, seq, progress, applied_at.astimezone(UTC), bytes(body), message_id, type_,
        app_id, timestamp, orjson.loads(headers) if isinstance(headers, str) else headers,
        bool(on_portal),
    )  # fmt: skip


def page_query(
    mark: str, limit: int, unit: str, since: object, after: tuple[object, str] | None
) -> tuple[str, list[object]]:
    """The SELECT of one page of `applied`, moments already in the backend's form."""
    sql = f"SELECT {COLUMNS} FROM dossier_state WHERE unit = {mark}"
    params: list[object] = [unit]
    if since is not None:
        sql += f" AND applied_at >= {mark}"
        params.append(since)
    if after is not None:
        sql += f" AND (applied_at, dossier_code) > ({mark}, {mark})"
        params += after
    return sql + f" ORDER BY applied_at, dossier_code LIMIT {limit}", params
