"""SLA targets for complaints, their due times, and where a complaint stands.

Seed 004 promises the customer a reply within 24 hours and has work ordered
by urgency (紧急程度). So each priority (``critical``, ``high``, ``normal``,
``low``) has three targets counted in business time on the
``WorkingCalendar``: ``first_reply`` (clock starts at filing),
``next_reply`` (starts at the agent's latest reply) and ``resolution``
(starts at filing).

How "24 hours at most" meets business hours: the first-reply due time is
the *earlier* of the priority's business-hours target and
``first_reply_cap`` (24 h) of clock time after filing. Business hours alone
would let a complaint filed on Friday evening, or on the eve of Spring
Festival, wait days for an answer; the cap keeps the seed's promise on every
day of the year, so evenings, weekends and holidays need someone on duty to
answer. With the defaults the cap only decides outside working hours: the
lowest priority's 8 business hours equal 24 clock hours on a normal weekday.

Waiting on the customer stops the clocks: business targets move out by the
paused business time, the clock cap by the paused clock time. While a pause
is still open the due time is unknown: ``deadlines`` reports ``None`` for a
target it stops, and ``sla_status`` evaluates as if the customer had
answered at ``now``, so a target breached before the pause stays breached.

Targets are met, not breached, at the due instant itself; a target is in
``warning`` once ``warn_before`` (a fraction, e.g. 0.8) of it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from marshmallow import Schema, ValidationError as SchemaError, fields, validates_schema
from marshmallow.validate import Range

from shared.errors import ValidationError
from shared.validation import load
from shared.working_calendar import Pause, WorkingCalendar, merge_pauses

PRIORITIES = ("critical", "high", "normal", "low")
URGENCIES = ("low", "medium", "high", "critical")
TARGET_NAMES = ("first_reply", "next_reply", "resolution")
CATEGORIES = ("product_inquiry", "after_sales", "technical_support", "service_attitude", "billing", "other")

_PRIORITY_OF_URGENCY = dict(zip(URGENCIES, ("low", "normal", "high", "critical")))
# A grievance about money or about how staff behaved is never "low" (docs/domain.md:
# order by urgency *and* importance); other categories follow urgency alone.
_GRIEVANCES = frozenset({"billing", "service_attitude"})


@dataclass(frozen=True)
class Targets:
    """One priority's targets, each a business-time duration."""

    first_reply: timedelta
    next_reply: timedelta
    resolution: timedelta


def _in_hours(duration: timedelta) -> float:
    return duration / timedelta(hours=1)


def _targets_in_hours(first_reply: float, next_reply: float, resolution: float) -> Targets:
    return Targets(timedelta(hours=first_reply), timedelta(hours=next_reply), timedelta(hours=resolution))


# A working day is 8 business hours (09:00-18:00 less lunch): the lowest
# priority gets one working day for its first reply, the highest one hour.
DEFAULT_TARGETS = {
    "critical": _targets_in_hours(1, 2, 8),
    "high": _targets_in_hours(2, 4, 16),
    "normal": _targets_in_hours(4, 8, 24),
    "low": _targets_in_hours(8, 16, 40),
}


@dataclass(frozen=True)
class SlaPolicy:
    """Targets by priority; ``warn_before`` is the fraction of a target used when the warning is due."""

    targets: Mapping[str, Targets] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    warn_before: float = 0.8
    first_reply_cap: timedelta = timedelta(hours=24)

    def for_priority(self, priority: str) -> Targets:
        if priority not in self.targets:
            raise ValidationError({"priority": [f"must be one of {', '.join(PRIORITIES)}"]})
        return self.targets[priority]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlaPolicy:
        """Build from config (hours as numbers); priorities left out keep the defaults."""
        loaded = load(SlaPolicySchema(), config)
        targets = {**DEFAULT_TARGETS, **{p: _targets_in_hours(**hours) for p, hours in loaded["targets"].items()}}
        return cls(targets, loaded["warn_before"], timedelta(hours=loaded["first_reply_cap_hours"]))

    def to_config(self) -> dict[str, Any]:
        """The inverse of ``from_config``, e.g. to show the policy in effect."""
        return {
            "warn_before": self.warn_before,
            "first_reply_cap_hours": _in_hours(self.first_reply_cap),
            "targets": {priority: {name: _in_hours(getattr(targets, name)) for name in TARGET_NAMES}
                        for priority, targets in self.targets.items()},
        }


def _positive_hours(**kwargs: Any) -> fields.Float:
    return fields.Float(validate=Range(min=0, min_inclusive=False), **kwargs)


class TargetsSchema(Schema):
    first_reply = _positive_hours(required=True)
    next_reply = _positive_hours(required=True)
    resolution = _positive_hours(required=True)

    @validates_schema
    def _reply_before_resolution(self, data: dict[str, float], **kwargs: Any) -> None:
        if data["first_reply"] > data["resolution"]:
            raise SchemaError("must not exceed resolution", field_name="first_reply")


class TargetsByPrioritySchema(Schema):
    critical = fields.Nested(TargetsSchema)
    high = fields.Nested(TargetsSchema)
    normal = fields.Nested(TargetsSchema)
    low = fields.Nested(TargetsSchema)


class SlaPolicySchema(Schema):
    warn_before = fields.Float(load_default=0.8, validate=Range(0, 1, min_inclusive=False, max_inclusive=False))
    # Seed 004's promise is the upper bound: a tighter cap is allowed, a looser one is not.
    first_reply_cap_hours = fields.Float(load_default=24.0, validate=Range(0, 24, min_inclusive=False))
    targets = fields.Nested(TargetsByPrioritySchema, load_default=dict)


def priority_for(urgency: str, category: str) -> str:
    """The priority a new complaint gets from its urgency, raised for grievances."""
    if urgency not in _PRIORITY_OF_URGENCY:
        raise ValidationError({"urgency": [f"must be one of {', '.join(URGENCIES)}"]})
    if category not in CATEGORIES:
        raise ValidationError({"category": [f"must be one of {', '.join(CATEGORIES)}"]})
    priority = _PRIORITY_OF_URGENCY[urgency]
    return "normal" if priority == "low" and category in _GRIEVANCES else priority


def deadlines(policy: SlaPolicy, calendar: WorkingCalendar, filed_at: datetime, priority: str,
              first_replied_at: datetime | None = None, last_reply_at: datetime | None = None,
              pauses: Iterable[Pause] = ()) -> dict[str, datetime | None]:
    """Due times of the three targets; ``next_reply_due`` is None until the first reply.

    ``first_reply_due`` is reported even after the reply, so it can be compared.
    """
    pauses = list(pauses)
    targets = policy.for_priority(priority)
    last_reply = last_reply_at or first_replied_at
    return {
        "first_reply_due": _due(calendar, filed_at, targets.first_reply, policy.first_reply_cap, pauses),
        "next_reply_due": None if last_reply is None else _due(calendar, last_reply, targets.next_reply, None, pauses),
        "resolution_due": _due(calendar, filed_at, targets.resolution, None, pauses),
    }


def sla_status(now: datetime, policy: SlaPolicy, calendar: WorkingCalendar, filed_at: datetime, priority: str,
               first_replied_at: datetime | None = None, last_reply_at: datetime | None = None,
               resolved_at: datetime | None = None, pauses: Iterable[Pause] = ()) -> list[dict[str, Any]]:
    """The running targets at ``now``: ``[{target, due, warn_at, state}]``, state ok|warning|breached.

    A target stops running once met: first reply when replied, the others when
    resolved. The timer warns on ``warning`` and breaches on ``breached``.
    """
    if resolved_at is not None:
        return []
    pauses = [(start, now if end is None else end) for start, end in pauses if end is not None or start < now]
    targets = policy.for_priority(priority)
    if first_replied_at is None:
        running = [("first_reply", filed_at, targets.first_reply)]
    else:
        running = [("next_reply", last_reply_at or first_replied_at, targets.next_reply)]
    running.append(("resolution", filed_at, targets.resolution))
    status = []
    for name, start, target in running:
        cap = policy.first_reply_cap if name == "first_reply" else None
        due = _due(calendar, start, target, cap, pauses)
        warn_at = _due(calendar, start, target * policy.warn_before, cap and cap * policy.warn_before, pauses)
        state = "breached" if now > due else "warning" if now >= warn_at else "ok"
        status.append({"target": name, "due": due, "warn_at": warn_at, "state": state})
    return status


def _due(calendar: WorkingCalendar, start: datetime, budget: timedelta, cap: timedelta | None,
         pauses: list[Pause]) -> datetime | None:
    """When ``budget`` of business time is used, or ``cap`` of clock time if that comes first."""
    dues = [calendar.add_business_time(start, budget, pauses)]
    if cap is not None:
        dues.append(_clock_due(start, cap, pauses))
    return min((due.astimezone(calendar.zone) for due in dues if due is not None), default=None)


def _clock_due(start: datetime, duration: timedelta, pauses: Iterable[Pause]) -> datetime | None:
    """``start`` plus ``duration`` of clock time, not counting time paused; None if an open pause stops it."""
    start = start.astimezone(timezone.utc)
    due = start + duration
    for pause_start, pause_end in merge_pauses(pauses):
        if pause_start >= due:
            break
        if pause_end is None:
            return None
        if pause_end > start:
            due += pause_end - max(pause_start, start)
    return due
