"""The callbacks config and the dependency that gives workers the rules it sets.

Config (nameko config key ``CALLBACKS``; all optional)::

    CALLBACKS:
      calling_window: {timezone: Asia/Shanghai, day_start: "09:00", day_end: "20:00", breaks: []}
      retry_delay_minutes: 60          # busy / no_answer / voicemail: tried again after this
      max_attempts: 3                  # the last unanswered attempt fails the callback
      return_to_pool_after_minutes: 120  # an assigned callback this overdue goes back to the team pool
      satisfaction_max_age_days: 7     # a complaint resolved longer ago than this gets no satisfaction call
      timer_seconds: 60                # how often the sweep runs (pool returns, periodic callbacks)

The window's ``timezone`` is the zone of a customer the service knows no
zone for, and the zone ``kpis`` counts days in; each customer's window is
the same hours on their own local working days (China's calendar). A bad
setting stops the service at start with a ``ValidationError`` naming it.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any, Mapping

from marshmallow import Schema, fields, validate
from nameko.extensions import DependencyProvider

from services.callbacks import domain
from shared.validation import load
from shared.working_hours import ClockTime, WorkingHoursSchema, calendar_from_hours

CONFIG_KEY = "CALLBACKS"
TIMER_SECONDS_KEY = (CONFIG_KEY, "timer_seconds")
DEFAULT_TIMER_SECONDS = 60.0


class CallingWindowSchema(WorkingHoursSchema):
    """Office hours with a calling window's defaults: 09:00-20:00, no break."""

    day_end = ClockTime(load_default=time(20))
    breaks = fields.List(fields.List(ClockTime(), validate=validate.Length(equal=2)), load_default=list)


class CallbacksConfigSchema(Schema):
    calling_window = fields.Nested(CallingWindowSchema, load_default=None)
    retry_delay_minutes = fields.Float(load_default=60.0, validate=validate.Range(min=0))
    max_attempts = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=1, max=20))
    return_to_pool_after_minutes = fields.Float(load_default=120.0, validate=validate.Range(min=0))
    satisfaction_max_age_days = fields.Float(load_default=7.0, validate=validate.Range(min=0))
    timer_seconds = fields.Float(validate=validate.Range(min=0.05))


def load_rules(config: Mapping[str, Any] | None) -> domain.Rules:
    """The ``Rules`` from the ``CALLBACKS`` config (``ValidationError`` naming the setting if bad)."""
    settings = load(CallbacksConfigSchema(), dict(config or {}))
    window = settings["calling_window"] or load(CallingWindowSchema(), {})
    return domain.Rules(window=calendar_from_hours(window),
                        retry_delay=timedelta(minutes=settings["retry_delay_minutes"]),
                        max_attempts=settings["max_attempts"],
                        return_to_pool_after=timedelta(minutes=settings["return_to_pool_after_minutes"]),
                        satisfaction_max_age=timedelta(days=settings["satisfaction_max_age_days"]))


class CallbackRules(DependencyProvider):
    """Gives workers the rules (``rules``), loaded once per container from its config."""

    def setup(self) -> None:
        self.rules = load_rules(self.container.config.get(CONFIG_KEY))

    def get_dependency(self, worker_ctx) -> "CallbackRules":
        return self
