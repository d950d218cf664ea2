"""The complaint aggregate: pure decide and evolve functions, no I/O.

A complaint goes record → classify → assign → track → confirm (docs/domain.md:
问题记录 → 问题分类 → 分配 → 问题跟踪 → 确认满意). ``decide_*`` functions take
the current state, a validated command and the time, and return the events
to append or raise ``Conflict``; ``evolve`` applies one event to the state.
Free texts arrive here in plain text; the service seals them before the log
sees them. Times are aware ``datetime``s in, ISO 8601 UTC text in events.

The SLA check (``decide_sla_check``) is a decision like any other: given the
state, the time and the rules it returns warnings, breaches with their
escalations, the confirmation reminder and the automatic close.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Iterable

from services.complaints import sla
from shared.clock import iso, parse  # noqa: F401 - the log's time text, used here and by importers
from shared.errors import Conflict, NotFound
from shared.eventstore.envelope import Envelope, NewEvent
from shared.working_calendar import WorkingCalendar

#: What each status lets a caller do; everything else is a ``Conflict``.
_WORKING = ("classify", "assign", "respond", "request_info", "escalate", "resolve")
ALLOWED_ACTIONS: dict[str, tuple[str, ...]] = {
    "open": _WORKING,
    "assigned": _WORKING,
    "in_progress": _WORKING,
    "waiting_on_customer": _WORKING + ("customer_replied",),
    "resolved": ("confirm", "reopen"),
    "reopened": _WORKING,
    "closed": (),
}
ACTIVE = frozenset(status for status, actions in ALLOWED_ACTIONS.items() if "resolve" in actions)


def stream_of(complaint_id: str) -> str:
    return f"complaint-{complaint_id}"


def access_stream_of(complaint_id: str) -> str:
    """Reads of a complaint's texts are logged beside it, so a read never moves the complaint's version."""
    return f"pii-access-{complaint_id}"


# -- time ---------------------------------------------------------------------------

def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


# -- rules -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Rules:
    """Everything the SLA decisions depend on besides the complaint and the time (from config)."""

    policy: sla.SlaPolicy = field(default_factory=sla.SlaPolicy)
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    auto_close_after: timedelta = timedelta(days=3)
    reminder_lead: timedelta = timedelta(days=1)
    max_escalation_level: int = 3
    fingerprint: str = ""  # of the config they came from: the SLA schedule is only valid for the same rules


# -- state -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Complaint:
    complaint_id: str
    version: int = 0
    status: str = "new"
    customer_id: str | None = None
    channel: str | None = None
    category: str | None = None
    urgency: str | None = None
    priority: str | None = None
    related_complaint_id: str | None = None
    callback_id: str | None = None  # the callback whose issue this complaint was filed for
    assignee: str | None = None
    escalation_level: int = 0
    filed_at: str | None = None
    first_replied_at: str | None = None
    last_replied_at: str | None = None
    clock_started_at: str | None = None   # filing, or the latest reopen: the resolution clock
    reply_clock_from: str | None = None   # latest reply, or the latest reopen: the next-reply clock
    resolved_at: str | None = None
    first_resolved_at: str | None = None
    closed_at: str | None = None
    close_reason: str | None = None
    reminded_at: str | None = None
    pauses: tuple[tuple[str, str | None], ...] = ()
    warned: frozenset[str] = frozenset()
    breached: frozenset[str] = frozenset()
    breaches: tuple[dict[str, Any], ...] = ()
    score_asked: bool = False
    score: int | None = None
    satisfied: bool | None = None
    reopen_count: int = 0

    @property
    def waiting_since(self) -> str | None:
        return self.pauses[-1][0] if self.pauses and self.pauses[-1][1] is None else None

    def require(self, action: str) -> None:
        """Refuse ``action`` unless the current status allows it, naming what is allowed."""
        if self.status == "new":
            raise NotFound(f"no complaint {self.complaint_id}")
        if action in ALLOWED_ACTIONS[self.status]:
            return
        if self.status == "closed":
            raise Conflict(f"cannot {action} complaint {self.complaint_id}: it is closed, and a closed complaint "
                           f"is final; file a new complaint with related_complaint_id={self.complaint_id}")
        raise Conflict(f"cannot {action} complaint {self.complaint_id}: it is {self.status}; "
                       f"allowed now: {', '.join(ALLOWED_ACTIONS[self.status])}")

    def require_version(self, expected_version: int | None) -> None:
        if expected_version is not None and expected_version != self.version:
            raise Conflict(f"complaint {self.complaint_id} is at version {self.version}, not {expected_version}: "
                           "reload it and decide again")


def status_after(status: str, event_type: str) -> str:
    """The status an event leaves behind (shared with the list projection)."""
    if event_type == "ComplaintFiled":
        return "open"
    if event_type == "ComplaintAssigned":
        return status if status == "waiting_on_customer" else "assigned"
    if event_type in ("ComplaintResponded", "ComplaintCustomerReplied"):
        return "in_progress"
    if event_type == "ComplaintInfoRequested":
        return "waiting_on_customer"
    if event_type == "ComplaintResolved":
        return "resolved"
    if event_type == "ComplaintReopened":
        return "reopened"
    if event_type == "ComplaintClosed":
        return "closed"
    return status


def target_key(target: str, started_at: str) -> str:
    """One running instance of an SLA target: the target and when its clock started."""
    return f"{target}@{started_at}"


def _end_pause(pauses: tuple, at: str) -> tuple:
    if pauses and pauses[-1][1] is None:
        return pauses[:-1] + ((pauses[-1][0], at),)
    return pauses


def _replied(state: Complaint, at: str) -> Complaint:
    return replace(state, first_replied_at=state.first_replied_at or at, last_replied_at=at, reply_clock_from=at)


def evolve(state: Complaint, event_type: str, data: dict[str, Any], version: int, at: str) -> Complaint:
    """Apply one event; ``at`` is the event's ``occurred_at`` (the service clock's time)."""
    state = replace(state, version=version, status=status_after(state.status, event_type))
    if event_type == "ComplaintFiled":
        return replace(state, customer_id=data["customer_id"], channel=data["channel"], category=data["category"],
                       urgency=data["urgency"], priority=data["priority"],
                       related_complaint_id=data["related_complaint_id"], callback_id=data.get("callback_id"),
                       filed_at=at, clock_started_at=at)
    if event_type == "ComplaintClassified":
        return replace(state, category=data["category"], priority=data["priority"])
    if event_type == "ComplaintAssigned":
        return replace(state, assignee=data["agent"])
    if event_type == "ComplaintResponded":
        return replace(_replied(state, at), pauses=_end_pause(state.pauses, at))
    if event_type == "ComplaintInfoRequested":
        pauses = state.pauses if state.waiting_since else state.pauses + ((at, None),)
        return replace(_replied(state, at), pauses=pauses)
    if event_type == "ComplaintCustomerReplied":
        return replace(state, pauses=_end_pause(state.pauses, at))
    if event_type == "ComplaintEscalated":
        return replace(state, escalation_level=data["level"])
    if event_type == "ComplaintResolved":
        return replace(_replied(state, at), pauses=_end_pause(state.pauses, at), resolved_at=at,
                       first_resolved_at=state.first_resolved_at or at)
    if event_type == "ComplaintConfirmed":
        return replace(state, score_asked=True, score=state.score if data["score"] is None else data["score"],
                       satisfied=data["satisfied"])
    if event_type == "ComplaintReopened":
        return replace(state, resolved_at=None, reminded_at=None, reopen_count=data["reopen_count"],
                       clock_started_at=at, reply_clock_from=at)
    if event_type == "ComplaintClosed":
        return replace(state, closed_at=at, close_reason=data["reason"])
    if event_type == "ComplaintConfirmationReminded":
        return replace(state, reminded_at=at)
    if event_type == "ComplaintSlaWarning":
        return replace(state, warned=state.warned | {target_key(data["target"], data["started_at"])})
    if event_type == "ComplaintSlaBreached":
        return replace(state, breached=state.breached | {target_key(data["target"], data["started_at"])},
                       breaches=state.breaches + ({"target": data["target"], "due": data["due"], "breached_at": at},))
    return state


def fold(complaint_id: str, envelopes: Iterable[Envelope]) -> Complaint:
    state = Complaint(complaint_id)
    for envelope in envelopes:
        state = evolve(state, envelope.type, envelope.data, envelope.stream_version, envelope.occurred_at)
    return state


# -- commands ------------------------------------------------------------------------

def _event(event_type: str, state_or_id: Complaint | str, now: datetime, **data: Any) -> NewEvent:
    complaint_id = state_or_id if isinstance(state_or_id, str) else state_or_id.complaint_id
    return NewEvent(event_type, {"complaint_id": complaint_id, **data}, occurred_at=iso(now))


def decide_file(complaint_id: str, command: dict[str, Any], now: datetime, rules: Rules) -> list[NewEvent]:
    """Record a new complaint with the priority its urgency gives and its due times."""
    priority = sla.priority_for(command["urgency"], command["category"])
    due = sla.deadlines(rules.policy, rules.calendar, now, priority)
    return [_event("ComplaintFiled", complaint_id, now, customer_id=command["customer_id"],
                   channel=command["channel"], category=command["category"], urgency=command["urgency"],
                   priority=priority, summary=command["summary"], description=command["description"],
                   related_complaint_id=command.get("related_complaint_id"),
                   **({"callback_id": command["callback_id"]} if command.get("callback_id") else {}),
                   first_reply_due=iso_or_none(due["first_reply_due"]),
                   resolution_due=iso_or_none(due["resolution_due"]))]


def decide_classify(state: Complaint, category: str, priority: str, now: datetime,
                    expected_version: int | None = None) -> list[NewEvent]:
    state.require("classify")
    state.require_version(expected_version)
    if (state.category, state.priority) == (category, priority):
        return []
    return [_event("ComplaintClassified", state, now, category=category, priority=priority,
                   previous_category=state.category, previous_priority=state.priority)]


def decide_assign(state: Complaint, agent: str, now: datetime, expected_version: int | None = None) -> list[NewEvent]:
    state.require("assign")
    state.require_version(expected_version)
    if state.assignee == agent:
        return []
    return [_event("ComplaintAssigned", state, now, agent=agent, previous_agent=state.assignee)]


def decide_respond(state: Complaint, message: str, now: datetime,
                   expected_version: int | None = None) -> list[NewEvent]:
    """A reply to the customer; from ``waiting_on_customer`` it also resumes the SLA clock."""
    state.require("respond")
    state.require_version(expected_version)
    return [_event("ComplaintResponded", state, now, message=message, first_reply=state.first_replied_at is None)]


def decide_request_info(state: Complaint, question: str, now: datetime,
                        expected_version: int | None = None) -> list[NewEvent]:
    """Ask the customer; counts as a reply, and the SLA clocks stop until the customer answers."""
    state.require("request_info")
    state.require_version(expected_version)
    return [_event("ComplaintInfoRequested", state, now, question=question)]


def decide_customer_replied(state: Complaint, message: str, now: datetime,
                            expected_version: int | None = None) -> list[NewEvent]:
    state.require("customer_replied")
    state.require_version(expected_version)
    return [_event("ComplaintCustomerReplied", state, now, message=message)]


def decide_escalate(state: Complaint, reason: str, now: datetime, rules: Rules,
                    expected_version: int | None = None) -> list[NewEvent]:
    """上报: one level up, beside the status; the top level cannot go higher."""
    state.require("escalate")
    state.require_version(expected_version)
    if state.escalation_level >= rules.max_escalation_level:
        raise Conflict(f"complaint {state.complaint_id} is already at the top escalation level "
                       f"({rules.max_escalation_level}); it cannot go higher")
    return [_escalation(state, now, reason, "manual", None)]


def decide_resolve(state: Complaint, resolution: str, now: datetime,
                   expected_version: int | None = None) -> list[NewEvent]:
    state.require("resolve")
    state.require_version(expected_version)
    return [_event("ComplaintResolved", state, now, resolution=resolution)]


def decide_confirm(state: Complaint, satisfied: bool, score: int | None, now: datetime,
                   expected_version: int | None = None) -> list[NewEvent]:
    """The customer's word on the resolution: satisfied closes, not satisfied reopens.

    The satisfaction score is asked once per complaint: at the first
    confirmation (the customer may decline: ``None``); a later confirmation,
    after a reopen, records satisfied or not but refuses a score.
    """
    state.require("confirm")
    state.require_version(expected_version)
    if score is not None and state.score_asked:
        raise Conflict(f"the satisfaction score of complaint {state.complaint_id} was asked at its first "
                       f"confirmation (score {state.score if state.score is not None else 'declined'}); "
                       "confirm again without a score")
    events = [_event("ComplaintConfirmed", state, now, satisfied=satisfied, score=score)]
    if satisfied:
        events.append(_event("ComplaintClosed", state, now, reason="the customer confirmed being satisfied",
                             trigger="confirmed"))
    else:
        events.append(_event("ComplaintReopened", state, now, reason="the customer is not satisfied with the resolution",
                             reopen_count=state.reopen_count + 1))
    return events


def decide_reopen(state: Complaint, reason: str, now: datetime,
                  expected_version: int | None = None) -> list[NewEvent]:
    state.require("reopen")
    state.require_version(expected_version)
    return [_event("ComplaintReopened", state, now, reason=reason, reopen_count=state.reopen_count + 1)]


def decide_text_access(state: Complaint, shown: list[str], method: str) -> list[NewEvent]:
    """Record that ``method`` showed the texts named in ``shown`` in clear (for ``access_stream_of``)."""
    return [NewEvent("PiiAccessed", {"customer_id": state.customer_id, "complaint_id": state.complaint_id,
                                     "purpose": "complaint_handling", "fields": shown, "method": method})]


def _escalation(state: Complaint, now: datetime, reason: str, trigger: str, target: str | None,
                level: int | None = None) -> NewEvent:
    previous = state.escalation_level if level is None else level - 1
    return _event("ComplaintEscalated", state, now, level=previous + 1, previous_level=previous, reason=reason,
                  trigger=trigger, target=target)


# -- SLA -------------------------------------------------------------------------------

def _pauses(state: Complaint) -> list[tuple[datetime, datetime | None]]:
    return [(parse(start), parse(end)) for start, end in state.pauses]


def running_targets(state: Complaint, now: datetime, rules: Rules) -> list[dict[str, Any]]:
    """``sla.sla_status`` for the complaint's current cycle, each target with when its clock started."""
    if state.status not in ACTIVE:
        return []
    status = sla.sla_status(now, rules.policy, rules.calendar, parse(state.clock_started_at), state.priority,
                            first_replied_at=parse(state.first_replied_at),
                            last_reply_at=parse(state.reply_clock_from) if state.first_replied_at else None,
                            pauses=_pauses(state))
    started = {"first_reply": state.filed_at, "next_reply": state.reply_clock_from,
               "resolution": state.clock_started_at}
    return [{**entry, "started_at": started[entry["target"]]} for entry in status]


def due_times(state: Complaint, rules: Rules) -> dict[str, str | None]:
    """``first_reply_due``, ``next_reply_due``, ``resolution_due``; ``None`` while the clock is stopped.

    The first-reply due time is shown even after the reply, to compare; no
    pause touches it, because every pause begins with a reply (a question to
    the customer). The next-reply one is shown only while the complaint is
    being worked.
    """
    pauses = _pauses(state)
    first = sla.deadlines(rules.policy, rules.calendar, parse(state.filed_at), state.priority)
    current = sla.deadlines(rules.policy, rules.calendar, parse(state.clock_started_at), state.priority,
                            first_replied_at=parse(state.first_replied_at),
                            last_reply_at=parse(state.reply_clock_from), pauses=pauses)
    return {"first_reply_due": iso_or_none(first["first_reply_due"]),
            "next_reply_due": iso_or_none(current["next_reply_due"]) if state.status in ACTIVE else None,
            "resolution_due": iso_or_none(current["resolution_due"])}


def decide_sla_check(state: Complaint, now: datetime, rules: Rules) -> list[NewEvent]:
    """What the SLA timer records for one complaint at ``now`` (often nothing).

    Each running target instance is warned about at most once, and breached
    at most once; a breach escalates one level (up to the top). A resolved
    complaint gets a reminder ``reminder_lead`` before ``auto_close_after``
    and closes itself at ``auto_close_after``, but never sooner than
    ``reminder_lead`` after the reminder, so the customer always has that
    long to answer it.
    """
    if state.status == "resolved":
        return _confirmation_deadline(state, now, rules)
    events: list[NewEvent] = []
    level = state.escalation_level
    for entry in running_targets(state, now, rules):
        key = target_key(entry["target"], entry["started_at"])
        if key in state.breached:
            continue
        common = {"target": entry["target"], "started_at": entry["started_at"], "due": iso(entry["due"])}
        if entry["state"] == "breached":
            events.append(_event("ComplaintSlaBreached", state, now, **common))
            if level < rules.max_escalation_level:
                level += 1
                events.append(_escalation(state, now, f"SLA breach: {entry['target']} was due {common['due']}",
                                          "sla_breach", entry["target"], level))
        elif entry["state"] == "warning" and key not in state.warned:
            events.append(_event("ComplaintSlaWarning", state, now, warn_at=iso(entry["warn_at"]), **common))
    return events


def next_sla_check(state: Complaint, now: datetime, rules: Rules) -> datetime | None:
    """The earliest moment ``decide_sla_check`` may record something, as the complaint stands at ``now``.

    Exact while the clock runs. While the complaint waits on the customer its
    targets move out as the wait goes on, so the moment computed at ``now``
    (as if the customer answered now) can only come early, never late.
    ``None``: nothing can happen until the complaint changes.
    """
    if state.status == "resolved":
        return _confirmation_step_at(state, rules)
    moments = []
    for entry in running_targets(state, now, rules):
        key = target_key(entry["target"], entry["started_at"])
        if key not in state.breached:
            moments.append(entry["due"] if key in state.warned else entry["warn_at"])
    return min(moments, default=None)


def _confirmation_step_at(state: Complaint, rules: Rules) -> datetime:
    """When a resolved complaint gets its reminder or, once reminded, closes itself."""
    resolved = parse(state.resolved_at)
    if state.reminded_at is None:
        return resolved + rules.auto_close_after - rules.reminder_lead
    return max(resolved + rules.auto_close_after, parse(state.reminded_at) + rules.reminder_lead)


def _confirmation_deadline(state: Complaint, now: datetime, rules: Rules) -> list[NewEvent]:
    if now < _confirmation_step_at(state, rules):
        return []
    if state.reminded_at is None:
        closes = max(parse(state.resolved_at) + rules.auto_close_after, now + rules.reminder_lead)
        return [_event("ComplaintConfirmationReminded", state, now, resolved_at=state.resolved_at,
                       closes_at=iso(closes))]
    days = rules.auto_close_after / timedelta(days=1)
    return [_event("ComplaintClosed", state, now, trigger="auto_close",
                   reason=f"not confirmed within {days:g} days of resolution; closed after the reminder "
                          f"of {state.reminded_at}")]
