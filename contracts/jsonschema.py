"""JSON Schema (draft 2020-12) from the marshmallow contracts, for non-Python callers.

Covers the field types the contracts use; an unknown type fails loudly so a
new field never exports as an empty schema by accident.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate

from contracts.catalogue import EVENTS, RPC
from contracts.envelope import Envelope

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_SIMPLE = [  # most specific first: Email is a String, UUID is a String
    (fields.Email, {"type": "string", "format": "email"}),
    (fields.UUID, {"type": "string", "format": "uuid"}),
    (fields.Date, {"type": "string", "format": "date"}),
    (fields.String, {"type": "string"}),
    (fields.Integer, {"type": "integer"}),
    (fields.Boolean, {"type": "boolean"}),
    (fields.Float, {"type": "number"}),
]


def schema_of(schema: Schema) -> dict[str, Any]:
    properties, required = {}, []
    for name, field in schema.fields.items():
        key = field.data_key or name
        properties[key] = field_schema(field)
        if field.required:
            required.append(key)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def field_schema(field: fields.Field) -> dict[str, Any]:
    if isinstance(field, fields.Nested):
        result = schema_of(field.schema)
    elif isinstance(field, fields.List):
        result = {"type": "array", "items": field_schema(field.inner)}
    elif isinstance(field, fields.Dict):
        result = {"type": "object"}
    else:
        result = next((dict(shape) for kind, shape in _SIMPLE if isinstance(field, kind)), None)
        if result is None:
            raise TypeError(f"no JSON Schema mapping for {type(field).__name__}")
    for rule in field.validators:
        result.update(_rule(rule, is_list=isinstance(field, fields.List)))
    if field.allow_none:
        result = {"anyOf": [result, {"type": "null"}]}
    return result


def _rule(rule: Any, is_list: bool = False) -> dict[str, Any]:
    if isinstance(rule, validate.OneOf):
        return {"enum": list(rule.choices)}
    if isinstance(rule, validate.Regexp):
        return {"pattern": rule.regex.pattern}
    if isinstance(rule, validate.Length):
        key = ("minItems", "maxItems") if is_list else ("minLength", "maxLength")
        return {k: v for k, v in zip(key, (rule.min, rule.max)) if v is not None}
    if isinstance(rule, validate.Range):
        return {k: v for k, v in (("minimum", rule.min), ("maximum", rule.max)) if v is not None}
    return {}


def export(out_dir: Path) -> list[Path]:
    """Write one file per event and RPC payload plus the envelope; return their paths."""
    written = []

    def write(relative: str, title: str, schema: Schema) -> None:
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"$schema": DRAFT, "title": title, **schema_of(schema)}, indent=2,
                                   ensure_ascii=False) + "\n")
        written.append(path)

    write("envelope.json", "Event envelope", Envelope())
    for service, events in EVENTS.items():
        for event_type, schema_cls in events.items():
            write(f"{service}/events/{event_type}.json", f"{service} {event_type}", schema_cls())
    for service, methods in RPC.items():
        for method, schema_cls in methods.items():
            write(f"{service}/rpc/{method}.json", f"{service}.{method} arguments", schema_cls())
    return written
