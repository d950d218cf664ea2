"""Contracts of the complaints service: RPC payloads and event data.

RPC schemas list fields in call order: positional arguments are
bound to them in that order. Every command also takes an optional
``expected_version`` (the version the caller last read; stale is a
``Conflict``) and ``command_id`` (a repeat returns the first result and
appends nothing).

Free texts (summary, description, messages, questions, resolution, and the
reasons of an escalation or a reopen) may hold PII: in the log they are
AES-GCM ciphertext ``enc:v2:...`` under the customer's data key in the
complaints service's own key table. The SLA sweep's escalations and the
closing reasons are written by the service and stay plain.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from contracts.customers import PiiAccessed
from contracts.fields import Text, command_id, expected_version, identifier, one_of, page, page_size

CATEGORIES = ("product_inquiry", "after_sales", "technical_support", "service_attitude", "billing", "other")
CHANNELS = ("phone", "online", "email", "walk_in")
URGENCIES = ("low", "medium", "high", "critical")
PRIORITIES = ("critical", "high", "normal", "low")
STATUSES = ("open", "assigned", "in_progress", "waiting_on_customer", "resolved", "reopened", "closed")
SLA_TARGETS = ("first_reply", "next_reply", "resolution")
ESCALATION_TRIGGERS = ("manual", "sla_breach")
CLOSE_TRIGGERS = ("confirmed", "auto_close")

#: Which data fields of which event hold free text that may carry PII (sealed in the log).
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "ComplaintFiled": ("summary", "description"),
    "ComplaintResponded": ("message",),
    "ComplaintInfoRequested": ("question",),
    "ComplaintCustomerReplied": ("message",),
    "ComplaintResolved": ("resolution",),
    "ComplaintEscalated": ("reason",),
    "ComplaintReopened": ("reason",),
}

SUMMARY_MAX, TEXT_MAX, REASON_MAX = 200, 5000, 500


class Instant(fields.String):
    """An ISO 8601 time with a UTC offset (``2026-03-02T09:30:00+08:00``); loaded as UTC text."""

    def _deserialize(self, value, attr, data, **kwargs):
        raw = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError as error:
            raise ValidationError("not an ISO 8601 time: use e.g. 2026-03-02T09:30:00+08:00") from error
        if moment.tzinfo is None:
            raise ValidationError("give a UTC offset, e.g. 2026-03-02T09:30:00+08:00 or ...Z")
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DayOrInstant(Instant):
    """A day (``2026-03-02``, taken in the service's working time zone) or an ``Instant``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) == 10:
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError as error:
                raise ValidationError("not a date: use YYYY-MM-DD") from error
        return super()._deserialize(value, attr, data, **kwargs)


# -- RPC payloads ------------------------------------------------------------

class File(Schema):
    customer_id = identifier(required=True)
    channel = one_of(CHANNELS, required=True)
    category = one_of(CATEGORIES, required=True)
    summary = Text(SUMMARY_MAX, required=True)
    description = Text(TEXT_MAX, multiline=True, required=True)
    urgency = one_of(URGENCIES, required=True)
    related_complaint_id = identifier(load_default=None, allow_none=True)
    command_id = command_id()


class Classify(Schema):
    complaint_id = identifier(required=True)
    category = one_of(CATEGORIES, required=True)
    priority = one_of(PRIORITIES, required=True)
    expected_version = expected_version()
    command_id = command_id()


class Assign(Schema):
    complaint_id = identifier(required=True)
    agent = Text(100, required=True)
    expected_version = expected_version()
    command_id = command_id()


class Respond(Schema):
    complaint_id = identifier(required=True)
    message = Text(TEXT_MAX, multiline=True, required=True)
    expected_version = expected_version()
    command_id = command_id()


class RequestInfo(Schema):
    complaint_id = identifier(required=True)
    question = Text(TEXT_MAX, multiline=True, required=True)
    expected_version = expected_version()
    command_id = command_id()


class CustomerReplied(Schema):
    complaint_id = identifier(required=True)
    message = Text(TEXT_MAX, multiline=True, required=True)
    expected_version = expected_version()
    command_id = command_id()


class Escalate(Schema):
    complaint_id = identifier(required=True)
    reason = Text(REASON_MAX, multiline=True, required=True)
    expected_version = expected_version()
    command_id = command_id()


class Resolve(Schema):
    complaint_id = identifier(required=True)
    resolution = Text(TEXT_MAX, multiline=True, required=True)
    expected_version = expected_version()
    command_id = command_id()


class Confirm(Schema):
    complaint_id = identifier(required=True)
    satisfied = fields.Boolean(required=True)
    score = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=5))
    expected_version = expected_version()
    command_id = command_id()


class Reopen(Schema):
    complaint_id = identifier(required=True)
    reason = Text(REASON_MAX, multiline=True, required=True)
    expected_version = expected_version()
    command_id = command_id()


class GetComplaint(Schema):
    complaint_id = identifier(required=True)


class ListComplaints(Schema):
    status = one_of(STATUSES, load_default=None, allow_none=True)
    assignee = Text(100, load_default=None, allow_none=True)
    category = one_of(CATEGORIES, load_default=None, allow_none=True)
    priority = one_of(PRIORITIES, load_default=None, allow_none=True)
    breached = fields.Boolean(load_default=None, allow_none=True)
    customer_id = identifier(load_default=None, allow_none=True)
    page = page()
    page_size = page_size()


class Stats(Schema):
    since = DayOrInstant(load_default=None, allow_none=True)
    until = DayOrInstant(load_default=None, allow_none=True)

    @validates_schema
    def since_before_until(self, data, **_kwargs):
        since, until = data.get("since"), data.get("until")
        if since and until and len(since) == len(until) and since >= until:
            raise ValidationError({"until": ["must be after since"]})


class RunSlaCheck(Schema):
    now = Instant(load_default=None, allow_none=True)


# -- event data ----------------------------------------------------------------

class _Event(Schema):
    complaint_id = fields.String(required=True)


class ComplaintFiled(_Event):
    customer_id = fields.String(required=True)
    channel = one_of(CHANNELS, required=True)
    category = one_of(CATEGORIES, required=True)
    urgency = one_of(URGENCIES, required=True)
    priority = one_of(PRIORITIES, required=True)
    summary = fields.String(required=True)
    description = fields.String(required=True)
    related_complaint_id = fields.String(required=True, allow_none=True)
    callback_id = fields.String(load_default=None, allow_none=True)  # filed for an issue found during this callback
    first_reply_due = fields.String(required=True, allow_none=True)
    resolution_due = fields.String(required=True, allow_none=True)


class ComplaintClassified(_Event):
    category = one_of(CATEGORIES, required=True)
    priority = one_of(PRIORITIES, required=True)
    previous_category = one_of(CATEGORIES, required=True)
    previous_priority = one_of(PRIORITIES, required=True)


class ComplaintAssigned(_Event):
    agent = fields.String(required=True)
    previous_agent = fields.String(required=True, allow_none=True)


class ComplaintResponded(_Event):
    message = fields.String(required=True)
    first_reply = fields.Boolean(required=True)


class ComplaintInfoRequested(_Event):
    question = fields.String(required=True)


class ComplaintCustomerReplied(_Event):
    message = fields.String(required=True)


class ComplaintEscalated(_Event):
    level = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    previous_level = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    reason = fields.String(required=True)
    trigger = one_of(ESCALATION_TRIGGERS, required=True)
    target = one_of(SLA_TARGETS, required=True, allow_none=True)


class ComplaintResolved(_Event):
    resolution = fields.String(required=True)


class ComplaintConfirmed(_Event):
    satisfied = fields.Boolean(required=True)
    score = fields.Integer(required=True, allow_none=True, strict=True, validate=validate.Range(min=1, max=5))


class ComplaintReopened(_Event):
    reason = fields.String(required=True)
    reopen_count = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class ComplaintClosed(_Event):
    reason = fields.String(required=True)
    trigger = one_of(CLOSE_TRIGGERS, required=True)


class ComplaintConfirmationReminded(_Event):
    resolved_at = fields.String(required=True)
    closes_at = fields.String(required=True)


class _SlaTarget(_Event):
    target = one_of(SLA_TARGETS, required=True)
    started_at = fields.String(required=True)
    due = fields.String(required=True)


class ComplaintSlaWarning(_SlaTarget):
    warn_at = fields.String(required=True)


class ComplaintSlaBreached(_SlaTarget):
    pass


class ComplaintTextsRead(PiiAccessed):
    """``PiiAccessed`` in the complaints log: a complaint's texts were shown in clear to the event's actor."""

    complaint_id = fields.String(required=True)


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "ComplaintFiled": ComplaintFiled,
    "ComplaintClassified": ComplaintClassified,
    "ComplaintAssigned": ComplaintAssigned,
    "ComplaintResponded": ComplaintResponded,
    "ComplaintInfoRequested": ComplaintInfoRequested,
    "ComplaintCustomerReplied": ComplaintCustomerReplied,
    "ComplaintEscalated": ComplaintEscalated,
    "ComplaintResolved": ComplaintResolved,
    "ComplaintConfirmed": ComplaintConfirmed,
    "ComplaintReopened": ComplaintReopened,
    "ComplaintClosed": ComplaintClosed,
    "ComplaintConfirmationReminded": ComplaintConfirmationReminded,
    "ComplaintSlaWarning": ComplaintSlaWarning,
    "ComplaintSlaBreached": ComplaintSlaBreached,
    "PiiAccessed": ComplaintTextsRead,
}

RPC_SCHEMAS: dict[str, type[Schema]] = {
    "file": File, "classify": Classify, "assign": Assign, "respond": Respond, "request_info": RequestInfo,
    "customer_replied": CustomerReplied, "escalate": Escalate, "resolve": Resolve, "confirm": Confirm,
    "reopen": Reopen, "get": GetComplaint, "list": ListComplaints, "stats": Stats, "run_sla_check": RunSlaCheck,
}

