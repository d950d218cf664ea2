"""Contracts of the callbacks service (回访): RPC payloads and event data.

RPC schemas list fields in call order: positional arguments are bound to
them in that order. Commands take an optional ``command_id`` (a repeat
returns the first result and appends nothing) and, where they change one
callback, an optional ``expected_version``.

Call notes and issue texts may hold PII: in the log they are AES-GCM
ciphertext ``enc:v2:...`` under the customer's data key in the callbacks
service's own key table, bound to the callback's stream and the field.
Everything else in these events is codes, ids, times and numbers.
"""

from __future__ import annotations

import uuid

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.complaints import CATEGORIES, DayOrInstant, Instant
from contracts.customers import PiiAccessed, TIERS
from contracts.fields import Text, command_id, expected_version, identifier, one_of

KINDS = ("satisfaction", "maintenance_reminder", "lost_customer", "lost_deal", "periodic")
OUTCOMES = ("reached", "no_answer", "busy", "wrong_number", "refused", "voicemail")
RETRIED_OUTCOMES = ("no_answer", "busy", "voicemail")
FINAL_OUTCOMES = ("wrong_number", "refused")
PRIORITIES = ("urgent", "high", "normal", "low")
STATUSES = ("scheduled", "completed", "failed", "cancelled")
ORIGINS = ("agent", "complaint_resolved", "sample", "periodic")
CANCEL_REASONS = ("consent_withdrawn", "customer_erased", "no_longer_needed", "duplicate", "customer_request")
FAIL_REASONS = ("max_attempts", "wrong_number", "refused")

#: Which data fields of which event hold free text that may carry PII (sealed in the log).
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "CallbackAttempted": ("notes",),
    "CallbackIssueRaised": ("issue",),
}

NOTES_MAX, ISSUE_MAX = 2000, 2000
_LINKED_COMPLAINTS = uuid.UUID("5d0c7f3e-3c1b-4f0e-9a59-2f4c1e0b7a11")


def linked_complaint_id(issue_event_id: str) -> str:
    """The id of the complaint filed for the ``CallbackIssueRaised`` event ``issue_event_id``.

    Derived from the event, so every delivery and every retry names the same
    complaint, and both services know it without asking each other.
    """
    return str(uuid.uuid5(_LINKED_COMPLAINTS, issue_event_id))


def _agent(**kwargs) -> Text:
    return Text(100, **kwargs)


# -- RPC payloads ------------------------------------------------------------

class Schedule(Schema):
    customer_id = identifier(required=True)
    kind = one_of(KINDS, required=True)
    due_at = Instant(load_default=None, allow_none=True)  # default: now (moved into the calling window)
    priority = one_of(PRIORITIES, load_default="normal")
    assignee = _agent(load_default=None, allow_none=True)  # none: the team pool
    command_id = command_id()


class Sample(Schema):
    kind = one_of(KINDS, load_default="lost_deal")
    customer_ids = fields.List(identifier(), required=True, validate=validate.Length(min=1, max=2000))
    rate = fields.Float(load_default=0.15, validate=validate.Range(min=0, max=1, min_inclusive=False))
    priority = one_of(PRIORITIES, load_default="normal")
    command_id = command_id()

    @validates_schema
    def distinct(self, data, **_kwargs):
        ids = data.get("customer_ids") or []
        if len(set(ids)) != len(ids):
            raise ValidationError({"customer_ids": ["list each customer once"]})


class RecordAttempt(Schema):
    callback_id = identifier(required=True)
    outcome = one_of(OUTCOMES, required=True)
    satisfaction = fields.Integer(load_default=None, allow_none=True, strict=True,
                                  validate=validate.Range(min=1, max=5))
    script_followed = fields.Boolean(load_default=None, allow_none=True, truthy={True}, falsy={False})
    notes = Text(NOTES_MAX, multiline=True, load_default=None, allow_none=True)
    issue = Text(ISSUE_MAX, multiline=True, load_default=None, allow_none=True)
    issue_category = one_of(CATEGORIES, load_default="other")
    expected_version = expected_version()
    command_id = command_id()

    @validates_schema
    def only_a_reached_call_is_scored(self, data, **_kwargs):
        if data.get("outcome") == "reached":
            if data.get("script_followed") is None:
                raise ValidationError({"script_followed": ["say whether the script was followed (规范) "
                                                           "on a reached call: true or false"]})
            return
        problems = {name: [f"only a reached call has {what}; this one was {data.get('outcome')}"]
                    for name, what in (("satisfaction", "a satisfaction score"),
                                       ("script_followed", "a script check"), ("issue", "an issue found"))
                    if data.get(name) is not None}
        if problems:
            raise ValidationError(problems)


class Cancel(Schema):
    callback_id = identifier(required=True)
    reason = one_of(CANCEL_REASONS, required=True)
    expected_version = expected_version()
    command_id = command_id()


class GetCallback(Schema):
    callback_id = identifier(required=True)


class ListDue(Schema):
    before = Instant(load_default=None, allow_none=True)  # default: now
    assignee = _agent(load_default=None, allow_none=True)
    include_pool = fields.Boolean(load_default=True, truthy={True}, falsy={False})
    kind = one_of(KINDS, load_default=None, allow_none=True)
    limit = fields.Integer(load_default=100, strict=True, validate=validate.Range(min=1, max=500))


class Kpis(Schema):
    since = DayOrInstant(required=True)
    until = DayOrInstant(required=True)

    @validates_schema
    def since_before_until(self, data, **_kwargs):
        since, until = data.get("since"), data.get("until")
        if since and until and len(since) == len(until) and since >= until:
            raise ValidationError({"until": ["must be after since"]})


class SetPeriodicRule(Schema):
    tier = one_of(TIERS, required=True)
    every_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=366))  # 0: none
    priority = one_of(PRIORITIES, load_default="normal")
    command_id = command_id()


class PeriodicRules(Schema):
    pass


class RunSweep(Schema):
    now = Instant(load_default=None, allow_none=True)


class IssueText(Schema):
    callback_id = identifier(required=True)
    event_id = fields.UUID(required=True)


# -- event data ----------------------------------------------------------------

class _Event(Schema):
    callback_id = fields.String(required=True)


class CallbackScheduled(_Event):
    customer_id = fields.String(required=True)
    kind = one_of(KINDS, required=True)
    due_at = fields.String(required=True)
    requested_at = fields.String(required=True, allow_none=True)  # the due time asked for, if it was moved
    moved = fields.String(required=True, allow_none=True)         # why it was moved, if it was
    timezone = fields.String(required=True)
    priority = one_of(PRIORITIES, required=True)
    assignee = fields.String(required=True, allow_none=True)
    max_attempts = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    origin = one_of(ORIGINS, required=True)
    complaint_id = fields.String(required=True, allow_none=True)  # the resolved complaint of a satisfaction call
    sample = fields.Dict(required=True, allow_none=True)          # rank, population, rate, score: why picked


class CallbackAttempted(_Event):
    attempt = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    outcome = one_of(OUTCOMES, required=True)
    satisfaction = fields.Integer(required=True, allow_none=True, strict=True, validate=validate.Range(min=1, max=5))
    script_followed = fields.Boolean(required=True, allow_none=True)
    notes = fields.String(required=True, allow_none=True)
    agent = fields.String(required=True)
    kind = one_of(KINDS, required=True)
    next_due_at = fields.String(required=True, allow_none=True)  # a retried outcome: when the next try is due


class CallbackReturnedToPool(_Event):
    previous_assignee = fields.String(required=True)
    due_at = fields.String(required=True)
    overdue_minutes = fields.Integer(required=True, strict=True)


class CallbackCompleted(_Event):
    attempts = fields.Integer(required=True, strict=True)
    satisfaction = fields.Integer(required=True, allow_none=True, strict=True)
    script_followed = fields.Boolean(required=True)


class CallbackFailed(_Event):
    attempts = fields.Integer(required=True, strict=True)
    reason = one_of(FAIL_REASONS, required=True)


class CallbackCancelled(_Event):
    reason = one_of(CANCEL_REASONS, required=True)


class CallbackIssueRaised(_Event):
    customer_id = fields.String(required=True)
    issue = fields.String(required=True)
    category = one_of(CATEGORIES, required=True)
    attempt = fields.Integer(required=True, strict=True)


class PeriodicRuleSet(Schema):
    tier = one_of(TIERS, required=True)
    every_days = fields.Integer(required=True, strict=True)
    priority = one_of(PRIORITIES, required=True)
    previous_every_days = fields.Integer(required=True, allow_none=True, strict=True)


class CallbackTextsRead(PiiAccessed):
    """``PiiAccessed`` in the callbacks log: a callback's notes or issue were shown in clear."""

    callback_id = fields.String(required=True)


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "CallbackScheduled": CallbackScheduled,
    "CallbackAttempted": CallbackAttempted,
    "CallbackReturnedToPool": CallbackReturnedToPool,
    "CallbackCompleted": CallbackCompleted,
    "CallbackFailed": CallbackFailed,
    "CallbackCancelled": CallbackCancelled,
    "CallbackIssueRaised": CallbackIssueRaised,
    "PeriodicRuleSet": PeriodicRuleSet,
    "PiiAccessed": CallbackTextsRead,
}

RPC_SCHEMAS: dict[str, type[Schema]] = {
    "schedule": Schedule, "sample": Sample, "record_attempt": RecordAttempt, "cancel": Cancel,
    "get": GetCallback, "list_due": ListDue, "kpis": Kpis, "set_periodic_rule": SetPeriodicRule,
    "periodic_rules": PeriodicRules, "run_sweep": RunSweep, "issue_text": IssueText,
}
