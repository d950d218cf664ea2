"""The event envelope (DESIGN.md): what every event looks like on the wire and in exports."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

HASH = validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 hex digits")
SERVICES = ("customers", "complaints", "callbacks", "campaigns", "audit")


class Actor(Schema):
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(required=True)


class Envelope(Schema):
    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(r"^[A-Z][A-Za-z]{1,99}$"))
    schema_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    service = fields.String(required=True, validate=validate.OneOf(SERVICES))
    stream_id = fields.String(required=True, validate=validate.Length(min=1, max=120))
    stream_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    position = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.String(required=True)
    recorded_at = fields.String(required=True)
    actor = fields.Nested(Actor, required=True)
    correlation_id = fields.String(required=True)
    causation_id = fields.String(required=True, allow_none=True)
    data = fields.Dict(required=True)
    prev_hash = fields.String(required=True, validate=HASH)
    hash = fields.String(required=True, validate=HASH)
