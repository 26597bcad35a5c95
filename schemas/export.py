"""The contract as JSON Schema (draft 2020-12), for connectors written in other languages.

One schema per event type, plus `envelope`, which accepts any event and picks the type by
`event_type`. Code lists keep their Vietnamese labels in `x-enum-descriptions` and member
names in `x-enum-varnames`, the keys OpenAPI and JSON Schema code generators read.

Some rules of the Python models cannot be said in JSON Schema; each schema's `description`
lists them, and the bus enforces them all when it decodes an event.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from schemas.events import EVENT_TYPES, SCHEMA_VERSION, Event

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ENVELOPE = "envelope"

# "validation": what a publisher must send; fields with defaults may be left out.
_MODE: JsonSchemaMode = "validation"

_BEYOND_JSON_SCHEMA = """\
Rules that JSON Schema cannot express, which the bus enforces when it decodes an event:
- source.agency must be in the dossier's unit: the last three characters of \
source.agency (e.g. H29) equal those of the agency part of dossier_code;
- payload.dossier.code equals dossier_code;
- the yyMMdd part of a dossier code is a real calendar date;
- an applicant of type 1 (citizen) with an id_number has 12 digits (căn cước) or 9 digits \
(old identity card);
- a date-time whose description gives bounds lies within them (format "date-time" already \
demands a time zone offset, when the validator checks formats)."""


class _ContractSchema(GenerateJsonSchema):
    """pydantic's generator, plus what it leaves out and another validator needs."""

    def enum_schema(self, schema: core_schema.EnumSchema) -> JsonSchemaValue:
        json_schema = super().enum_schema(schema)
        members = schema["members"]
        labels = [getattr(member, "label", None) for member in members]
        if all(isinstance(label, str) for label in labels):
            json_schema["x-enum-varnames"] = [member.name for member in members]
            json_schema["x-enum-descriptions"] = labels
        return json_schema

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        # JSON Schema has no bounds for a date-time string: say them in words.
        json_schema = super().datetime_schema(schema)
        limits = {
            "from": schema.get("ge"),
            "after": schema.get("gt"),
            "up to": schema.get("le"),
            "before": schema.get("lt"),
        }
        bounds = [f"{words} {_iso(limit)}" for words, limit in limits.items() if limit]
        if bounds:
            json_schema["description"] = "A moment " + ", ".join(bounds) + "."
        return json_schema


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every event type's schema by its name, and the `envelope` schema for any event."""
    schemas = {}
    for name, model in EVENT_TYPES.items():
        schema = model.model_json_schema(mode=_MODE, schema_generator=_ContractSchema)
        _require_event_type(schema)
        schemas[name] = _described(
            schema, name, model.__name__, f"A `{name}` event of the dossier-bus contract."
        )
    envelope = TypeAdapter(Event).json_schema(mode=_MODE, schema_generator=_ContractSchema)
    for model in EVENT_TYPES.values():
        _require_event_type(envelope["$defs"][model.__name__])
    which = ", ".join(EVENT_TYPES)
    schemas[ENVELOPE] = _described(
        envelope, ENVELOPE, "Event", f"Any dossier-bus event; `event_type` says which: {which}."
    )
    return schemas


def _require_event_type(schema: dict[str, Any]) -> None:
    # The models default event_type, but decode_event needs it to pick the model.
    required: list[str] = schema["required"]
    if "event_type" not in required:
        required.append("event_type")


def _described(schema: dict[str, Any], name: str, title: str, summary: str) -> dict[str, Any]:
    schema["$schema"] = DIALECT
    schema["$id"] = f"urn:dossier-bus:schema:v{SCHEMA_VERSION}:{name}"
    schema["title"] = title
    schema["description"] = f"{summary} Schema version {SCHEMA_VERSION}.\n\n{_BEYOND_JSON_SCHEMA}"
    return schema


def export(directory: Path) -> list[Path]:
    """Write `<name>.schema.json` for each schema into `directory`; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(json_schemas().items()):
        path = directory / f"{name}.schema.json"
        # Sorted and indented so that a regenerated file diffs only where the contract changed.
        text = json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
