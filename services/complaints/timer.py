"""The SLA timer: its rules from config, its clock, its lease, and the sweep it runs.

Every ``sla_timer_seconds`` each replica's timer wakes, but only the one
holding the lease ``complaints.sla-timer`` in the service database acts, so
two replicas never both sweep. A complaint is loaded from its stream and
``domain.decide_sla_check`` says what to record at ``now``; the append is
guarded by the stream version, so even two sweeps racing (an admin's
``run_sla_check`` beside the timer) record each warning, breach and close
once: the loser gets ``Conflict`` and the next sweep looks again.

A sweep loads only the complaints that may be due (``schedule``).

The clock is a dependency: ``ComplaintRules(clock=...)`` gives every worker
``now()``. Production uses the wall clock; tests pass their own or call
``run_sla_check(now)`` with a chosen time.

Config (nameko config key ``COMPLAINTS``; all optional)::

    COMPLAINTS:
      sla:                      # sla.SlaPolicySchema: warn_before, first_reply_cap_hours, targets
        targets: {critical: {first_reply: 1, next_reply: 2, resolution: 8}}
      working_hours: {timezone: Asia/Shanghai, day_start: "09:00", day_end: "18:00",
                      breaks: [["12:00", "13:00"]]}
      auto_close_days: 3        # a resolved complaint not confirmed closes itself after this
      reminder_lead_days: 1     # ... after a reminder sent this long before
      max_escalation_level: 3
      sla_timer_seconds: 60
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from marshmallow import Schema, ValidationError as SchemaError, fields, validate, validates_schema
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from services.complaints import domain
from services.complaints.schedule import due_complaint_ids, note_next_checks
from services.complaints.sla import SlaPolicy
from shared.auth import Principal
from shared.canonical import canonical_json, sha256_hex
from shared.errors import Conflict
from shared.leases import Lease
from shared.validation import load
from shared.working_hours import WorkingHoursSchema, calendar_from_hours

log = logging.getLogger(__name__)

CONFIG_KEY = "COMPLAINTS"
LEASE_NAME = "complaints.sla-timer"
DEFAULT_TIMER_SECONDS = 60.0
TIMER_PRINCIPAL = Principal("sla-timer", "service")


class ComplaintsConfigSchema(Schema):
    sla = fields.Dict(load_default=dict)
    working_hours = fields.Nested(WorkingHoursSchema, load_default=None)
    auto_close_days = fields.Float(load_default=3.0, validate=validate.Range(min=0, min_inclusive=False))
    reminder_lead_days = fields.Float(load_default=1.0, validate=validate.Range(min=0))
    max_escalation_level = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=1, max=10))
    sla_timer_seconds = fields.Float(load_default=DEFAULT_TIMER_SECONDS, validate=validate.Range(min=0.05))

    @validates_schema
    def reminder_before_close(self, data, **_kwargs):
        if data["reminder_lead_days"] >= data["auto_close_days"]:
            raise SchemaError("must be less than auto_close_days", field_name="reminder_lead_days")


def load_rules(config: Mapping[str, Any] | None) -> tuple[domain.Rules, float]:
    """The ``Rules`` and the timer interval from the ``COMPLAINTS`` config (``ValidationError`` if bad)."""
    settings = load(ComplaintsConfigSchema(), dict(config or {}))
    hours = settings["working_hours"] or load(WorkingHoursSchema(), {})
    policy = SlaPolicy.from_config(settings["sla"])
    fingerprint = sha256_hex(canonical_json({
        "sla": policy.to_config(), "working_hours": {name: str(value) for name, value in hours.items()},
        **{name: settings[name] for name in ("auto_close_days", "reminder_lead_days", "max_escalation_level")}}))
    rules = domain.Rules(policy=policy, calendar=calendar_from_hours(hours),
                         auto_close_after=timedelta(days=settings["auto_close_days"]),
                         reminder_lead=timedelta(days=settings["reminder_lead_days"]),
                         max_escalation_level=settings["max_escalation_level"], fingerprint=fingerprint)
    return rules, settings["sla_timer_seconds"]


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


class ComplaintRules(DependencyProvider):
    """Gives workers the SLA rules, the clock (``now()``) and the timer's lease."""

    def __init__(self, clock: Callable[[], datetime] = wall_clock):
        self.clock = clock
        self._lease: Lease | None = None

    def setup(self) -> None:
        self.rules, self.timer_seconds = load_rules(self.container.config.get(CONFIG_KEY))

    def stop(self) -> None:
        if self._lease is not None and self._lease.held:
            try:
                self._lease.release()  # let another replica take over at once
            except Exception:  # noqa: BLE001 - it lapses by itself
                log.warning("could not release the SLA timer lease")

    def get_dependency(self, worker_ctx) -> "ComplaintRules":
        return self

    def now(self) -> datetime:
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the complaints clock must give timezone-aware times")
        return moment

    def lease(self, engine) -> Lease:
        """The timer's lease on ``engine``; its TTL spans a few ticks so a live holder keeps it."""
        if self._lease is None:
            owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
            self._lease = Lease(engine, LEASE_NAME, owner, ttl_seconds=max(3 * self.timer_seconds, 10.0))
        return self._lease


class SlaTimer(Timer):
    """nameko's ``@timer`` whose interval ``COMPLAINTS.sla_timer_seconds`` may override."""

    def setup(self) -> None:
        configured = (self.container.config.get(CONFIG_KEY) or {}).get("sla_timer_seconds")
        if configured is not None:
            self.interval = float(configured)


sla_timer = SlaTimer.decorator


def sweep(worker_log, principal: Principal, rules: domain.Rules, now: datetime) -> dict[str, Any]:
    """Run ``decide_sla_check`` at ``now`` on every open complaint that may be due, and append what it decides."""
    counts = {"checked": 0, "changed": 0, "conflicts": 0}
    recorded: dict[str, int] = {}
    quiet: list[domain.Complaint] = []
    engine = worker_log.store.engine
    for complaint_id in due_complaint_ids(engine, rules, now):
        counts["checked"] += 1
        state = domain.fold(complaint_id, worker_log.store.read_stream(domain.stream_of(complaint_id)))
        events = domain.decide_sla_check(state, now, rules)
        if not events:
            quiet.append(state)
            continue
        try:
            worker_log.append(principal, domain.stream_of(complaint_id), events, state.version)
        except Conflict:  # someone changed it meanwhile: the next sweep decides again
            counts["conflicts"] += 1
            continue
        counts["changed"] += 1
        for event in events:
            recorded[event.type] = recorded.get(event.type, 0) + 1
    note_next_checks(engine, rules, now, quiet)
    return {"now": domain.iso(now), **counts, "recorded": recorded}
