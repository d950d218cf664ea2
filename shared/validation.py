"""One gate for every payload that enters from outside.

RPC methods take positional or keyword arguments; ``load`` binds them to
the schema's field order, refuses oversized payloads
and unknown fields, and turns marshmallow's messages into the project's
``ValidationError`` so callers always see which field to fix.
"""

from __future__ import annotations

from typing import Any, Sequence

from marshmallow import Schema, ValidationError as SchemaError

from shared.canonical import canonical_json
from shared.errors import ValidationError

MAX_PAYLOAD_BYTES = 64 * 1024


def bind_arguments(order: Sequence[str], args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Name positional arguments by ``order`` and merge the keyword ones."""
    if len(args) > len(order):
        raise ValidationError({"_args": [f"at most {len(order)} positional arguments: {', '.join(order)}"]})
    payload = dict(zip(order, args))
    twice = set(payload) & set(kwargs)
    if twice:
        raise ValidationError({name: ["given both by position and by keyword"] for name in sorted(twice)})
    payload.update(kwargs)
    return payload


def load(schema: Schema, payload: Any) -> dict[str, Any]:
    """Validate ``payload`` against ``schema``; nothing invalid gets past this."""
    try:
        size = len(canonical_json(payload).encode("utf-8"))
    except (TypeError, ValueError) as error:
        raise ValidationError({"_payload": [f"not JSON-serialisable: {error}"]}) from error
    if size > MAX_PAYLOAD_BYTES:
        raise ValidationError({"_payload": [f"{size} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"]})
    try:
        return schema.load(payload)
    except SchemaError as error:
        raise ValidationError(error.messages) from error


def load_call(schema: Schema, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Bind an RPC call's arguments in the schema's declared field order and validate."""
    return load(schema, bind_arguments(list(schema.fields), args, kwargs))
