"""The complaints config and the dependency that gives workers the SLA rules it sets.

Config (nameko config key ``COMPLAINTS``; all optional)::

    COMPLAINTS:
      sla:                      # sla.SlaPolicySchema: warn_before, first_reply_cap_hours, targets
        targets: {critical: {first_reply: 1, next_reply: 2, resolution: 8}}
      working_hours: {timezone: Asia/Shanghai, day_start: "09:00", day_end: "18:00",
                      breaks: [["12:00", "13:00"]]}
      auto_close_days: 3        # a resolved complaint not confirmed closes itself after this
      reminder_lead_days: 1     # ... after a reminder sent this long before
      max_escalation_level: 3
      sla_timer_seconds: 60     # how often the SLA timer sweeps (read by the timer itself)

A bad setting stops the service at start with a ``ValidationError`` naming it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from marshmallow import Schema, ValidationError as SchemaError, fields, validate, validates_schema
from nameko.extensions import DependencyProvider

from services.complaints import domain
from services.complaints.sla import SlaPolicy
from shared.canonical import canonical_json, sha256_hex
from shared.validation import load
from shared.working_hours import WorkingHoursSchema, calendar_from_hours

CONFIG_KEY = "COMPLAINTS"
TIMER_SECONDS_KEY = (CONFIG_KEY, "sla_timer_seconds")
DEFAULT_TIMER_SECONDS = 60.0


class ComplaintsConfigSchema(Schema):
    sla = fields.Dict(load_default=dict)
    working_hours = fields.Nested(WorkingHoursSchema, load_default=None)
    auto_close_days = fields.Float(load_default=3.0, validate=validate.Range(min=0, min_inclusive=False))
    reminder_lead_days = fields.Float(load_default=1.0, validate=validate.Range(min=0))
    max_escalation_level = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=1, max=10))
    sla_timer_seconds = fields.Float(validate=validate.Range(min=0.05))

    @validates_schema
    def reminder_before_close(self, data, **_kwargs):
        if data["reminder_lead_days"] >= data["auto_close_days"]:
            raise SchemaError("must be less than auto_close_days", field_name="reminder_lead_days")


def load_rules(config: Mapping[str, Any] | None) -> domain.Rules:
    """The ``Rules`` from the ``COMPLAINTS`` config (``ValidationError`` if bad)."""
    settings = load(ComplaintsConfigSchema(), dict(config or {}))
    hours = settings["working_hours"] or load(WorkingHoursSchema(), {})
    policy = SlaPolicy.from_config(settings["sla"])
    fingerprint = sha256_hex(canonical_json({
        "sla": policy.to_config(), "working_hours": {name: str(value) for name, value in hours.items()},
        **{name: settings[name] for name in ("auto_close_days", "reminder_lead_days", "max_escalation_level")}}))
    return domain.Rules(policy=policy, calendar=calendar_from_hours(hours),
                        auto_close_after=timedelta(days=settings["auto_close_days"]),
                        reminder_lead=timedelta(days=settings["reminder_lead_days"]),
                        max_escalation_level=settings["max_escalation_level"], fingerprint=fingerprint)


class ComplaintRules(DependencyProvider):
    """Gives workers the SLA rules (``rules``), loaded once per container from its config."""

    def setup(self) -> None:
        self.rules = load_rules(self.container.config.get(CONFIG_KEY))

    def get_dependency(self, worker_ctx) -> "ComplaintRules":
        return self
