"""The campaigns config (nameko config key ``CAMPAIGNS``; all optional)::

    CAMPAIGNS:
      frequency_cap: {messages: 2, days: 7}   # at most 2 care messages per customer in 7 days, across campaigns
      feb29: feb28                            # or mar1: where a 29 February birthday falls in other years
      opt_out_url: "https://crm.example.com/care/opt-out?c={customer_id}"
      retry: {attempts: 3, backoff_seconds: 0.2}
      smtp: {host: localhost, port: 25, sender: care@example.com, timeout_seconds: 10}
      webhook: {url: "https://sms-gateway.example.com/care", timeout_seconds: 10}
      birthday_timer_seconds: 300             # how often due birthday campaigns are triggered (leased)
      batch_size: 500                         # customers per reveal_contacts call and per append

A bad setting stops the service at start with a ``ValidationError`` naming it.
"""

from __future__ import annotations

from typing import Any, Mapping

from marshmallow import Schema, fields, validate

from shared.birthdays import FEB29_RULES
from contracts.customers import MAX_REVEAL_BATCH
from shared.validation import load

CONFIG_KEY = "CAMPAIGNS"
TIMER_SECONDS_KEY = (CONFIG_KEY, "birthday_timer_seconds")
DEFAULT_TIMER_SECONDS = 300.0


class FrequencyCap(Schema):
    messages = fields.Integer(load_default=2, strict=True, validate=validate.Range(min=1))
    days = fields.Integer(load_default=7, strict=True, validate=validate.Range(min=1, max=366))


class RetrySchema(Schema):
    attempts = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=1, max=10))
    backoff_seconds = fields.Float(load_default=0.2, validate=validate.Range(min=0, max=60))


class SmtpSchema(Schema):
    host = fields.String(load_default="localhost")
    port = fields.Integer(load_default=25, strict=True, validate=validate.Range(min=1, max=65535))
    sender = fields.Email(load_default="care@localhost.localdomain")
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1))


class WebhookSchema(Schema):
    url = fields.Url(load_default="http://localhost:8088/care", require_tld=False)
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1))


class CampaignsConfigSchema(Schema):
    frequency_cap = fields.Nested(FrequencyCap, load_default=lambda: FrequencyCap().load({}))
    feb29 = fields.String(load_default="feb28", validate=validate.OneOf(FEB29_RULES))
    opt_out_url = fields.String(load_default="https://crm.example.com/care/opt-out?c={customer_id}",
                                validate=validate.Regexp(r"^https?://.*\{customer_id\}",
                                                         error="an http(s) URL with {customer_id} in it"))
    retry = fields.Nested(RetrySchema, load_default=lambda: RetrySchema().load({}))
    smtp = fields.Nested(SmtpSchema, load_default=lambda: SmtpSchema().load({}))
    webhook = fields.Nested(WebhookSchema, load_default=lambda: WebhookSchema().load({}))
    birthday_timer_seconds = fields.Float(validate=validate.Range(min=0.05))
    batch_size = fields.Integer(load_default=MAX_REVEAL_BATCH, strict=True,
                                validate=validate.Range(min=1, max=MAX_REVEAL_BATCH))


def load_settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    return load(CampaignsConfigSchema(), dict(config or {}))
