"""One gate for every payload that enters from outside.

RPC methods take positional or keyword arguments; ``load`` binds them to
the schema's field order, refuses oversized payloads
and unknown fields, and turns marshmallow's messages into the project's
``ValidationError`` so callers always see which field to fix. Messages
never repeat the values they refuse (they are logged); a key that cannot
be a field name is reported as ``_unknown`` instead of by itself.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from marshmallow import Schema, ValidationError as SchemaError

from shared.canonical import canonical_json
from shared.errors import ValidationError

MAX_PAYLOAD_BYTES = 64 * 1024
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
UNKNOWN_KEYS = "_unknown"


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
        size = len(canonical_json(payload).encode("utf-8", "surrogatepass"))  # a field names a lone surrogate
    except (TypeError, ValueError) as error:
        raise ValidationError({"_payload": [f"not JSON-serialisable: {error}"]}) from error
    if size > MAX_PAYLOAD_BYTES:
        raise ValidationError({"_payload": [f"{size} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"]})
    try:
        return schema.load(payload)
    except SchemaError as error:
        raise ValidationError(_keyed_by_field_names(error.messages)) from error


def _keyed_by_field_names(messages: Any) -> Any:
    """marshmallow's messages, with keys that cannot be field names put under ``_unknown``.

    An unknown key is the caller's own input, and error messages are logged;
    a key that is no identifier (a name, a phone number) is not repeated.
    """
    if not isinstance(messages, dict):
        return messages
    keyed: dict[Any, Any] = {}
    for key, value in messages.items():
        if isinstance(key, str) and not FIELD_NAME.fullmatch(key):
            keyed.setdefault(UNKNOWN_KEYS, []).extend(value if isinstance(value, list) else [value])
        else:
            keyed[key] = _keyed_by_field_names(value)
    return keyed


def load_call(schema: Schema, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Bind an RPC call's arguments in the schema's declared field order and validate."""
    return load(schema, bind_arguments(list(schema.fields), args, kwargs))
