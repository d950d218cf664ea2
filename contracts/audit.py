"""Contracts of the audit service: RPC payloads and the events of its own log.

RPC schemas list fields in call order: positional arguments are bound to
them in that order. Every method is a read of the ledger; each call is
recorded in the audit service's own log as ``AuditQueried`` (who asked
what, how many entries it answered), so audits are audited too.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.complaints import Instant
from contracts.envelope import SERVICE_NAME
from contracts.fields import Text, identifier

MAX_POSITION = 2**63 - 1
MAX_PAGE = 5000
MAX_EXPORT = 100_000
HASH_HEX = r"^[0-9a-f]{64}$"
METHODS = ("replay", "customer_history", "state_as_of", "verify", "checkpoint", "prove", "consistency",
           "export", "pubkey")


def _position(**kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_POSITION), **kwargs)


class Filters(Schema):
    """Which ledger entries: all given conditions hold (an empty filter takes every entry)."""

    service = fields.String(load_default=None, allow_none=True,
                            validate=validate.Regexp(SERVICE_NAME, error="not a service name"))
    stream_id = Text(120, load_default=None, allow_none=True)
    customer_id = identifier(load_default=None, allow_none=True)
    type = fields.String(load_default=None, allow_none=True,
                         validate=validate.Regexp(r"^[A-Z][A-Za-z0-9]{0,99}$", error="not an event type"))
    since = Instant(load_default=None, allow_none=True)
    until = Instant(load_default=None, allow_none=True)


class Replay(Schema):
    filters = fields.Nested(Filters, load_default=dict)
    cursor = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=MAX_POSITION))
    limit = fields.Integer(load_default=500, strict=True, validate=validate.Range(min=1, max=MAX_PAGE))


class CustomerHistory(Schema):
    customer_id = identifier(required=True)
    cursor = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=MAX_POSITION))
    limit = fields.Integer(load_default=MAX_PAGE, strict=True, validate=validate.Range(min=1, max=MAX_PAGE))


class StateAsOf(Schema):
    customer_id = identifier(required=True)
    at = Instant(required=True)


class Verify(Schema):
    from_position = _position(load_default=1)
    to_position = _position(load_default=None, allow_none=True)
    every_signature = fields.Boolean(load_default=False, truthy={True}, falsy={False})
    sources = fields.Boolean(load_default=True, truthy={True}, falsy={False})


class Checkpoint(Schema):
    """A signed tree head as ``checkpoint`` answers it; only size and root are needed to name one."""

    tree_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_POSITION))
    root_hash = fields.String(required=True, validate=validate.Regexp(HASH_HEX, error="not a SHA-256 hex digest"))
    timestamp = fields.String(load_default=None, allow_none=True)
    signature = fields.String(load_default=None, allow_none=True)
    note = fields.String(load_default=None, allow_none=True)


class SignCheckpoint(Schema):
    pass


class Prove(Schema):
    ledger_position = _position(required=True)
    checkpoint = fields.Nested(Checkpoint, load_default=None, allow_none=True)


class Consistency(Schema):
    old = fields.Nested(Checkpoint, required=True)
    new = fields.Nested(Checkpoint, load_default=None, allow_none=True)


class Export(Schema):
    filters = fields.Nested(Filters, load_default=dict)
    limit = fields.Integer(load_default=10_000, strict=True, validate=validate.Range(min=1, max=MAX_EXPORT))


class Pubkey(Schema):
    pass


# -- the audit service's own events ----------------------------------------------------

class AuditQueried(Schema):
    method = fields.String(required=True, validate=validate.OneOf(METHODS))
    arguments = fields.Dict(required=True)
    answered = fields.Integer(required=True)


class CheckpointSigned(Schema):
    tree_size = fields.Integer(required=True)
    root_hash = fields.String(required=True)
    timestamp = fields.String(required=True)


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "AuditQueried": AuditQueried,
    "CheckpointSigned": CheckpointSigned,
}

RPC_SCHEMAS: dict[str, type[Schema]] = {
    "replay": Replay, "customer_history": CustomerHistory, "state_as_of": StateAsOf, "verify": Verify,
    "checkpoint": SignCheckpoint, "prove": Prove, "consistency": Consistency, "export": Export, "pubkey": Pubkey,
}
