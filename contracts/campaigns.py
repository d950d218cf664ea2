"""Contracts of the campaigns service: RPC payloads and event data.

RPC schemas list fields in call order: positional arguments are bound to
them in that order. Care messages carry no personal data in the log: a
message is named by its key (campaign × customer × occurrence), and the
rendered text exists only in the channel that delivered it.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.working_hours import ClockTime as WorkingClockTime

from contracts.customers import MAX_REVEAL_BATCH, TIERS
from contracts.fields import Text, command_id, identifier, locale, page, page_size

KINDS = ("birthday", "holiday")
#: Festivals on the lunar calendar (month, day), converted per year by ``lunar-python``.
LUNAR_HOLIDAYS = ("spring_festival", "lantern", "dragon_boat", "qixi", "mid_autumn", "double_ninth")
#: Solar holidays, dated by the ``holidays`` package's China calendar (first day of the holiday).
SOLAR_HOLIDAYS = ("new_year", "qingming", "labour_day", "national_day")
HOLIDAYS = LUNAR_HOLIDAYS + SOLAR_HOLIDAYS
CHANNELS = ("file", "smtp", "webhook")
STATUSES = ("active", "paused", "archived")
RUN_STATUSES = ("running", "completed")
SKIP_REASONS = ("no_consent", "erased", "no_contact", "outside_window", "already_sent", "frequency_cap")
#: Skips that are final for the customer, logged in ``CareMessageSkipped``; the others are only counted.
FINAL_SKIP_REASONS = ("no_consent", "erased", "no_contact", "frequency_cap")
TEMPLATE_VARIABLES = ("name", "tier", "holiday", "date", "opt_out_url")
ANY = "*"
MAX_TEMPLATES = 40
TEMPLATE_MAX = 2000
PREVIEW_MAX = 200
#: Messages in one care message event: a run's batch, as large as one ``reveal_contacts`` call.
MAX_BATCH = MAX_REVEAL_BATCH


class ClockTime(WorkingClockTime):
    """``HH:MM`` in the customer's own time zone; kept as text."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.second or moment.microsecond:
            raise ValidationError("use HH:MM without seconds, e.g. 09:00")
        return moment.strftime("%H:%M")


class Day(fields.Date):
    """An ISO date, kept as text."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).isoformat()


class Template(Schema):
    tier = fields.String(load_default=ANY, validate=validate.OneOf((ANY, *TIERS)))
    locale = fields.String(load_default=ANY, validate=validate.Regexp(r"^(\*|[a-z]{2,3}(-[A-Z]{2})?)$",
                                                                      error="use * or a locale like zh-CN"))
    body = Text(TEMPLATE_MAX, multiline=True, required=True)


class Segment(Schema):
    """Who a campaign is for; an empty list matches everyone."""

    tiers = fields.List(fields.String(validate=validate.OneOf(TIERS)), load_default=list)
    tags = fields.List(Text(40), load_default=list, validate=validate.Length(max=20))
    locales = fields.List(locale(), load_default=list, validate=validate.Length(max=20))


class SendWindow(Schema):
    """``start`` ≤ local time < ``end``; ``end`` 00:00 means midnight (the whole day from ``start``)."""

    start = ClockTime(load_default="09:00")
    end = ClockTime(load_default="20:00")

    @validates_schema
    def start_before_end(self, data, **_kwargs):
        if data["end"] != "00:00" and data["start"] >= data["end"]:
            raise ValidationError({"end": ["must be after start (or 00:00 for midnight)"]})


class Create(Schema):
    name = Text(100, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    holiday = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(HOLIDAYS))
    templates = fields.List(fields.Nested(Template), required=True,
                            validate=validate.Length(min=1, max=MAX_TEMPLATES))
    segment = fields.Nested(Segment, load_default=lambda: Segment().load({}))
    channel = fields.String(load_default="file", validate=validate.OneOf(CHANNELS))
    send_window = fields.Nested(SendWindow, load_default=lambda: SendWindow().load({}))
    command_id = command_id()

    @validates_schema
    def holiday_for_holiday_campaigns(self, data, **_kwargs):
        if data.get("kind") == "holiday" and not data.get("holiday"):
            raise ValidationError({"holiday": [f"a holiday campaign names its holiday: one of {', '.join(HOLIDAYS)}"]})
        if data.get("kind") == "birthday" and data.get("holiday"):
            raise ValidationError({"holiday": ["a birthday campaign has no holiday"]})

    @validates_schema
    def one_template_per_tier_and_locale(self, data, **_kwargs):
        pairs = [(template["tier"], template["locale"]) for template in data.get("templates", ())]
        if len(set(pairs)) != len(pairs):
            raise ValidationError({"templates": ["one template per tier and locale"]})


class GetCampaign(Schema):
    campaign_id = identifier(required=True)


class ListCampaigns(Schema):
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STATUSES))
    page = page()
    page_size = page_size()


class Preview(Schema):
    campaign_id = identifier(required=True)
    on_date = Day(required=True)
    limit = fields.Integer(load_default=20, strict=True, validate=validate.Range(min=0, max=PREVIEW_MAX))


class Trigger(Schema):
    campaign_id = identifier(required=True)
    on_date = Day(required=True)
    command_id = command_id()


class RunStatus(Schema):
    run_id = identifier(required=True)


class ChangeStatus(Schema):
    campaign_id = identifier(required=True)
    command_id = command_id()


# -- event data ---------------------------------------------------------------------

class CampaignCreated(Schema):
    campaign_id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    holiday = fields.String(allow_none=True)
    templates = fields.List(fields.Dict(), required=True)
    segment = fields.Dict(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    send_window = fields.Dict(required=True)


class CampaignStatusChanged(Schema):
    campaign_id = fields.String(required=True)


class CampaignRunStarted(Schema):
    run_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    on_date = fields.String(required=True)


class CareMessage(Schema):
    """One message of a batch: its key, the customer and the occurrence (never the text: it may hold the name)."""

    customer_id = fields.String(required=True)
    message_key = fields.String(required=True)
    occurrence = fields.String(required=True)


class CareMessageAttempted(CareMessage):
    attempts = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class CareMessageCutShort(CareMessageAttempted):
    reason = fields.String(required=True, validate=validate.Length(min=1))


class CareMessageSkip(Schema):
    customer_id = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(FINAL_SKIP_REASONS))


class _CareMessageBatch(Schema):
    """One event per batch of a run: ``customer_ids`` names the customers it concerns, in ``messages`` order.

    ``customer_ids`` is the list the audit ledger indexes an event by, so it
    must name exactly the customers of ``messages``.
    """

    run_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    customer_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=MAX_BATCH))

    @validates_schema
    def customer_ids_name_the_messages(self, data, **_kwargs):
        messages = data.get("messages")
        if messages is not None and "customer_ids" in data and \
                data["customer_ids"] != [message["customer_id"] for message in messages]:
            raise ValidationError({"customer_ids": ["must list the customer of each message, in order"]})


def _messages(item: type[Schema]) -> fields.List:
    return fields.List(fields.Nested(item), required=True, validate=validate.Length(min=1, max=MAX_BATCH))


class CareMessagesQueued(_CareMessageBatch):
    messages = _messages(CareMessage)


class CareMessagesSent(_CareMessageBatch):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    messages = _messages(CareMessageAttempted)


class CareMessagesFailed(CareMessagesSent):
    messages = _messages(CareMessageCutShort)


class CareMessagesSkipped(_CareMessageBatch):
    messages = _messages(CareMessageSkip)


class CampaignRunCompleted(Schema):
    run_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    counts = fields.Dict(required=True)


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "CampaignCreated": CampaignCreated,
    "CampaignPaused": CampaignStatusChanged,
    "CampaignResumed": CampaignStatusChanged,
    "CampaignArchived": CampaignStatusChanged,
    "CampaignRunStarted": CampaignRunStarted,
    "CareMessageQueued": CareMessagesQueued,
    "CareMessageSent": CareMessagesSent,
    "CareMessageSkipped": CareMessagesSkipped,
    "CareMessageFailed": CareMessagesFailed,
    "CampaignRunCompleted": CampaignRunCompleted,
}

RPC_SCHEMAS: dict[str, type[Schema]] = {
    "create": Create, "get": GetCampaign, "list": ListCampaigns, "preview": Preview, "trigger": Trigger,
    "run_status": RunStatus, "pause": ChangeStatus, "resume": ChangeStatus, "archive": ChangeStatus,
}
