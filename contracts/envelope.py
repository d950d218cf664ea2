"""The event envelope: what every event looks like on the wire and in exports.

The producing ``service`` is checked against a name pattern, not a list of
services. The envelope describes the wire, and its readers include programs
outside this installation (the pika client in ``contracts.client``) that
have none of the services installed; a list would make them reject the
events of a service they have never heard of, and would make every new
service a change to the contracts. The pattern is also what a service name
may be at all (``shared.discovery`` checks names with it), and it fits the
event store's ``service`` column of 32 characters.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

HASH = validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 hex digits")
SIGNATURE = validate.Regexp(r"^[A-Za-z0-9+/]{86}==$", error="must be 64 bytes, base64")
SERVICE_NAME = r"^[a-z][a-z0-9_]{0,31}$"
SERVICE_NAME_RULE = "a lower-case letter, then up to 31 lower-case letters, digits or _"


class Actor(Schema):
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(required=True)


class Envelope(Schema):
    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(r"^[A-Z][A-Za-z]{1,99}$"))
    schema_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    service = fields.String(required=True,
                            validate=validate.Regexp(SERVICE_NAME, error=f"must be {SERVICE_NAME_RULE}"))
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
    signature = fields.String(required=True, validate=SIGNATURE)  # the producer's Ed25519 signature of hash
