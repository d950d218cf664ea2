"""The callback aggregate (回访): pure decide and evolve functions, no I/O.

A callback is scheduled (by an agent, after a resolved complaint, by a
sample of lost deals, or by a tier's periodic rule), due at a time inside
the customer's calling window, and then attempted until it is completed
(reached), failed (a final outcome, or the last attempt unanswered) or
cancelled. ``decide_*`` functions take the state, a validated command and
the time, and return the events to append or raise ``Conflict`` /
``ValidationError``; ``evolve`` applies one event. Times are aware
``datetime``s in, ISO 8601 UTC text in events.

Where a time must fall inside the calling window (a due time, a retry),
``Rules.window_for(timezone)`` is the window on the China working calendar
in the customer's own zone. ``record_attempt`` is accepted at any time:
what happened, happened.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any, Iterable, Sequence

from contracts.callbacks import FINAL_OUTCOMES, PRIORITIES, RETRIED_OUTCOMES
from shared.clock import iso, parse
from shared.errors import Conflict, NotFound
from shared.eventstore.envelope import Envelope, NewEvent
from shared.working_calendar import WorkingCalendar

__all__ = ["iso", "parse"]

PRIORITY_RANK = {priority: rank for rank, priority in enumerate(PRIORITIES)}
OPEN = "scheduled"
CLOSED = ("completed", "failed", "cancelled")


def stream_of(callback_id: str) -> str:
    return f"callback-{callback_id}"


def access_stream_of(callback_id: str) -> str:
    """Reads of a callback's texts are logged beside it, so a read never moves the callback's version."""
    return f"pii-access-{callback_id}"


RULES_STREAM = "callback-rules"


# -- rules -------------------------------------------------------------------------

@dataclass(frozen=True)
class Rules:
    """What the decisions depend on besides the callback and the time (from config)."""

    window: WorkingCalendar = field(default_factory=lambda: WorkingCalendar(
        "Asia/Shanghai", time(9), time(20), breaks=()))
    retry_delay: timedelta = timedelta(hours=1)
    max_attempts: int = 3
    return_to_pool_after: timedelta = timedelta(hours=2)
    satisfaction_max_age: timedelta = timedelta(days=7)  # an older resolution gets no satisfaction call

    def window_for(self, timezone: str) -> WorkingCalendar:
        """The calling window on the customer's local working days and clock."""
        return self.window.in_zone(timezone)


def place_in_window(rules: Rules, timezone: str, wanted: datetime) -> tuple[datetime, str | None]:
    """``wanted`` if the window is open then, else the next opening, with why it moved."""
    window = rules.window_for(timezone)
    placed = window.next_open(wanted)
    if placed == wanted:
        return wanted, None
    local = wanted.astimezone(window.zone)
    if not window.is_working_day(wanted):
        why = f"{local:%Y-%m-%d} is not a working day in {timezone}"
    else:
        why = (f"{local:%H:%M} is outside the calling window "
               f"{window.day_start:%H:%M}-{window.day_end:%H:%M} in {timezone}")
    return placed, f"{why}; moved to the next opening {placed.astimezone(window.zone).isoformat()}"


def retry_at(rules: Rules, timezone: str, attempted_at: datetime) -> datetime:
    """When an unanswered call is tried again: after the delay, at the first open moment of the window."""
    return rules.window_for(timezone).next_open(attempted_at + rules.retry_delay)


# -- state ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Callback:
    callback_id: str
    version: int = 0
    status: str = "new"
    customer_id: str | None = None
    kind: str | None = None
    timezone: str = "Asia/Shanghai"
    due_at: str | None = None
    priority: str = "normal"
    assignee: str | None = None
    max_attempts: int = 3
    origin: str | None = None
    complaint_id: str | None = None
    attempts: int = 0
    outcome: str | None = None
    satisfaction: int | None = None
    script_followed: bool | None = None
    scheduled_at: str | None = None
    closed_at: str | None = None
    close_reason: str | None = None
    issues: tuple[str, ...] = ()

    def require_open(self, action: str) -> None:
        if self.status == "new":
            raise NotFound(f"no callback {self.callback_id}")
        if self.status in CLOSED:
            raise Conflict(f"cannot {action} callback {self.callback_id}: it is {self.status}"
                           + (f" ({self.close_reason})" if self.close_reason else "")
                           + "; schedule a new callback instead")

    def require_version(self, expected_version: int | None) -> None:
        if expected_version is not None and expected_version != self.version:
            raise Conflict(f"callback {self.callback_id} is at version {self.version}, not {expected_version}: "
                           "reload it and decide again")


_STATUS_AFTER = {"CallbackScheduled": OPEN, "CallbackCompleted": "completed", "CallbackFailed": "failed",
                 "CallbackCancelled": "cancelled"}


def status_after(status: str, event_type: str) -> str:
    return _STATUS_AFTER.get(event_type, status)


def evolve(state: Callback, event_type: str, data: dict[str, Any], version: int, at: str) -> Callback:
    """Apply one event (one ``replace``: a callback's stream is folded on every command)."""
    changes: dict[str, Any] = {"version": version, "status": status_after(state.status, event_type)}
    if event_type == "CallbackScheduled":
        changes.update(customer_id=data["customer_id"], kind=data["kind"], timezone=data["timezone"],
                       due_at=data["due_at"], priority=data["priority"], assignee=data["assignee"],
                       max_attempts=data["max_attempts"], origin=data["origin"],
                       complaint_id=data["complaint_id"], scheduled_at=at)
    elif event_type == "CallbackAttempted":
        changes.update(attempts=data["attempt"], outcome=data["outcome"], satisfaction=data["satisfaction"],
                       script_followed=data["script_followed"])
        if data["next_due_at"]:
            changes["due_at"] = data["next_due_at"]
    elif event_type == "CallbackReturnedToPool":
        changes["assignee"] = None
    elif event_type in ("CallbackCompleted", "CallbackFailed", "CallbackCancelled"):
        changes.update(closed_at=at, close_reason=data.get("reason"))
    elif event_type == "CallbackIssueRaised":
        changes["issues"] = state.issues + (data["category"],)
    return replace(state, **changes)


def fold(callback_id: str, envelopes: Iterable[Envelope]) -> Callback:
    state = Callback(callback_id)
    for envelope in envelopes:
        state = evolve(state, envelope.type, envelope.data, envelope.stream_version, envelope.occurred_at)
    return state


# -- commands ------------------------------------------------------------------------

def _event(event_type: str, callback_id: str, now: datetime, **data: Any) -> NewEvent:
    return NewEvent(event_type, {"callback_id": callback_id, **data}, occurred_at=iso(now))


def decide_schedule(callback_id: str, command: dict[str, Any], customer: dict[str, Any] | None, now: datetime,
                    rules: Rules, origin: str = "agent", complaint_id: str | None = None,
                    sample: dict[str, Any] | None = None) -> list[NewEvent]:
    """Schedule a callback, due inside the customer's calling window (moved there, saying so, if need be)."""
    require_callable(command["customer_id"], customer)
    wanted = parse(command["due_at"]) if command.get("due_at") else now
    due, moved = place_in_window(rules, customer["timezone"], max(wanted, now) if origin != "agent" else wanted)
    return [_event("CallbackScheduled", callback_id, now, customer_id=command["customer_id"], kind=command["kind"],
                   due_at=iso(due), requested_at=iso(wanted) if moved else None, moved=moved,
                   timezone=customer["timezone"], priority=command.get("priority") or "normal",
                   assignee=command.get("assignee"), max_attempts=rules.max_attempts, origin=origin,
                   complaint_id=complaint_id, sample=sample)]


def too_late_to_ask(resolved_at: str, now: datetime, rules: Rules) -> bool:
    """Whether a resolution is too old for a satisfaction call (a first start beside an old complaints log)."""
    return now - parse(resolved_at) > rules.satisfaction_max_age


def require_callable(customer_id: str, customer: dict[str, Any] | None) -> None:
    """Refuse a customer the service does not know, who was erased, or who withdrew the callbacks consent."""
    if customer is None:
        raise NotFound(f"no customer {customer_id} is known to the callbacks service: register the customer first")
    if customer["status"] == "erased":
        raise Conflict(f"customer {customer_id} was erased; no callback can be scheduled for them")
    if not customer["callbacks_consent"]:
        raise Conflict(f"customer {customer_id} has not consented to callbacks (or withdrew it); "
                       "no callback can be scheduled for them")


def decide_attempt(state: Callback, command: dict[str, Any], agent: str, now: datetime, rules: Rules,
                   ) -> list[NewEvent]:
    """Record one call and what follows from it: done, retried inside the window, or failed.

    A retried outcome names its next due time in the ``CallbackAttempted``
    itself, so the common case (busy, no answer) is one event, not two.
    """
    state.require_open("record an attempt on")
    state.require_version(command.get("expected_version"))
    outcome, attempt = command["outcome"], state.attempts + 1
    reached = outcome == "reached"
    retried = outcome in RETRIED_OUTCOMES and attempt < state.max_attempts
    events = [_event("CallbackAttempted", state.callback_id, now, attempt=attempt, outcome=outcome,
                     satisfaction=command.get("satisfaction") if reached else None,
                     script_followed=command.get("script_followed") if reached else None,
                     notes=command.get("notes"), agent=agent, kind=state.kind,
                     next_due_at=iso(retry_at(rules, state.timezone, now)) if retried else None)]
    if reached:
        if command.get("issue"):
            events.append(_event("CallbackIssueRaised", state.callback_id, now, customer_id=state.customer_id,
                                 issue=command["issue"], category=command.get("issue_category") or "other",
                                 attempt=attempt))
        events.append(_event("CallbackCompleted", state.callback_id, now, attempts=attempt,
                             satisfaction=command.get("satisfaction"), script_followed=command["script_followed"]))
    elif outcome in FINAL_OUTCOMES:
        events.append(_event("CallbackFailed", state.callback_id, now, attempts=attempt, reason=outcome))
    elif not retried:
        events.append(_event("CallbackFailed", state.callback_id, now, attempts=attempt, reason="max_attempts"))
    return events


def decide_cancel(state: Callback, reason: str, now: datetime, expected_version: int | None = None,
                  ) -> list[NewEvent]:
    state.require_open("cancel")
    state.require_version(expected_version)
    return [_event("CallbackCancelled", state.callback_id, now, reason=reason)]


def decide_cancel_if_open(state: Callback, reason: str, now: datetime) -> list[NewEvent]:
    """What consent withdrawal and erasure do: cancel it if it is still pending, else nothing."""
    return [] if state.status != OPEN else decide_cancel(state, reason, now)


def decide_return_to_pool(state: Callback, now: datetime, rules: Rules) -> list[NewEvent]:
    """An assigned callback overdue by more than the set time goes back to the team pool."""
    if state.status != OPEN or state.assignee is None:
        return []
    overdue = now - parse(state.due_at)
    if overdue <= rules.return_to_pool_after:
        return []
    return [_event("CallbackReturnedToPool", state.callback_id, now, previous_assignee=state.assignee,
                   due_at=state.due_at, overdue_minutes=int(overdue / timedelta(minutes=1)))]


def text_access(state: Callback, shown: list[str], method: str) -> NewEvent:
    """Record that ``method`` showed the texts named in ``shown`` in clear (for ``access_stream_of``)."""
    return NewEvent("PiiAccessed", {"customer_id": state.customer_id, "callback_id": state.callback_id,
                                    "purpose": "callbacks", "fields": shown, "method": method})


# -- sampling (战败回访: at least a share of lost deals, reproducibly) ------------------------

def sample_score(kind: str, customer_id: str) -> str:
    """Where a customer ranks in a sample of ``kind``: SHA-256 of the kind and the id (hex)."""
    return hashlib.sha256(f"carecrm-callback-sample:{kind}:{customer_id}".encode()).hexdigest()


def sample_size(population: int, rate: float) -> int:
    """How many of ``population`` make at least ``rate`` of it (``ceil``, without float dust: 0.15 × 20 is 3)."""
    return math.ceil(round(rate * population, 9))


def pick(kind: str, customer_ids: Sequence[str], rate: float, callable_: set[str] | frozenset[str],
         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pick at least ``rate`` of ``customer_ids`` (rounded up), the same ones for the same input.

    Customers rank by ``sample_score``, lowest first, so the pick does not
    depend on the order of the list or on who else is in it. One who may not
    be called (``callable_`` leaves them out) is skipped, and the next in
    rank takes the place, so the share of calls stays at least ``rate``
    while enough customers can be called. Returns (picked, skipped), each
    entry saying why.
    """
    population = len(customer_ids)
    required = sample_size(population, rate)
    ranked = sorted(customer_ids, key=lambda customer_id: sample_score(kind, customer_id))
    picked, skipped = [], []
    for rank, customer_id in enumerate(ranked, start=1):
        if len(picked) >= required:
            break
        score = sample_score(kind, customer_id)
        if customer_id not in callable_:
            skipped.append({"customer_id": customer_id, "rank": rank, "reason": "not callable (unknown, erased "
                                                                                 "or no callbacks consent)"})
            continue
        picked.append({"customer_id": customer_id, "rank": rank, "score": score[:16], "population": population,
                       "rate": rate, "required": required,
                       "reason": f"rank {rank} of {population} by SHA-256 of kind and customer id; "
                                 f"{required} needed for {rate:.0%}"})
    return picked, skipped


# -- KPIs --------------------------------------------------------------------------------

SUCCESS_TARGET, COMPLIANCE_TARGET = 95.0, 90.0


def kpi_figures(attempts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The figures of ``kpis`` from attempt rows (``callback_id``, ``agent``, ``kind``, ``day``,
    ``outcome``, ``satisfaction``, ``script_followed``), overall and per agent, kind and day.

    success rate = callbacks reached / callbacks attempted (a callback counts
    once however often it was tried); 规范率 = reached calls with the script
    followed / reached calls; satisfaction = mean score of the scored calls.
    Each figure is held against its target, and ``shortfalls`` lists every
    group under one.
    """
    rows = list(attempts)
    overall = _group(rows)
    groups = {dimension: {key: _group([row for row in rows if row[dimension] == key])
                          for key in sorted({row[dimension] for row in rows})}
              for dimension in ("agent", "kind", "day")}
    shortfalls = [{"scope": scope, "key": key, "kpi": kpi, "value": figures[kpi], "target": target}
                  for scope, key, figures in [("overall", None, overall)]
                  + [(dimension, key, figures) for dimension, by in groups.items() for key, figures in by.items()]
                  for kpi, target in (("success_rate_pct", SUCCESS_TARGET), ("compliance_pct", COMPLIANCE_TARGET))
                  if figures[kpi] is not None and figures[kpi] < target]
    return {**overall, "targets": {"success_rate_pct": SUCCESS_TARGET, "compliance_pct": COMPLIANCE_TARGET},
            "per_agent": groups["agent"], "per_kind": groups["kind"], "per_day": groups["day"],
            "shortfalls": shortfalls}


def _group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    attempted = {row["callback_id"] for row in rows}
    reached_rows = [row for row in rows if row["outcome"] == "reached"]
    reached = {row["callback_id"] for row in reached_rows}
    followed = sum(1 for row in reached_rows if row["script_followed"])
    scores = [row["satisfaction"] for row in reached_rows if row["satisfaction"] is not None]
    success, compliance = _pct(len(reached), len(attempted)), _pct(followed, len(reached_rows))
    return {"attempts": len(rows), "callbacks_attempted": len(attempted), "callbacks_reached": len(reached),
            "success_rate_pct": success, "meets_success_target": None if success is None else success >= SUCCESS_TARGET,
            "reached_calls": len(reached_rows), "script_followed": followed, "compliance_pct": compliance,
            "meets_compliance_target": None if compliance is None else compliance >= COMPLIANCE_TARGET,
            "average_satisfaction": round(sum(scores) / len(scores), 2) if scores else None, "scored": len(scores)}


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


# -- periodic rules ------------------------------------------------------------------------

def decide_periodic_rule(current: dict[str, dict[str, Any]], command: dict[str, Any], now: datetime,
                         ) -> list[NewEvent]:
    """Set how often customers of a tier are called (0: not at all); nothing if it is so already."""
    tier, previous = command["tier"], current.get(command["tier"])
    if previous and (previous["every_days"], previous["priority"]) == (command["every_days"], command["priority"]):
        return []
    return [NewEvent("PeriodicRuleSet", {"tier": tier, "every_days": command["every_days"],
                                         "priority": command["priority"],
                                         "previous_every_days": previous["every_days"] if previous else None},
                     occurred_at=iso(now))]


@dataclass(frozen=True)
class PeriodicRules:
    """The rules of every tier (``fold_rules``) and the version of their stream."""

    version: int = 0
    by_tier: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def fold(cls, envelopes: Iterable[Envelope]) -> "PeriodicRules":
        envelopes = list(envelopes)
        return cls(envelopes[-1].stream_version if envelopes else 0, fold_rules(envelopes))


def fold_rules(envelopes: Iterable[Envelope]) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for envelope in envelopes:
        if envelope.type == "PeriodicRuleSet":
            rules[envelope.data["tier"]] = {"every_days": envelope.data["every_days"],
                                            "priority": envelope.data["priority"], "set_at": envelope.occurred_at}
    return rules


def periodic_period(now: datetime, every_days: int) -> int:
    """Which period of ``every_days`` days (counted from 1970-01-01 UTC) ``now`` falls in."""
    return int(now.timestamp() // (every_days * 86400))

