"""Decide/evolve of the complaint aggregate and its SLA check, without broker or database.

Calendar: Asia/Shanghai, 09:00-18:00 with lunch 12-13 (8 business hours a
day). March 2024 has no holiday: Mon 18 ... Fri 22, Sat 23, Sun 24, Mon 25.
Normal priority targets: first reply 4 h, next reply 8 h, resolution 24 h
(business hours), warning at 80 %.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts import complaints as contract
from services.complaints import domain
from shared.errors import Conflict, NotFound
from shared.eventstore.envelope import Envelope
from shared.validation import load

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = domain.Rules()
FILE = {"customer_id": "cust-1", "channel": "phone", "category": "after_sales", "summary": "洗衣机漏水",
        "description": "新买的洗衣机第一次用就漏水", "urgency": "medium", "related_complaint_id": None,
        "command_id": None}
ACTIONS = ("classify", "assign", "respond", "request_info", "customer_replied", "escalate", "resolve",
           "confirm", "reopen")


def at(day, hour, minute=0, month=3):
    return datetime(2024, month, day, hour, minute, tzinfo=SHANGHAI)


FILED = at(18, 10)  # Monday 10:00


class Story:
    """A complaint's history built by running decisions, as the service would."""

    def __init__(self, now=FILED):
        self.envelopes = []
        self.state = domain.Complaint("c1")
        self.record(domain.decide_file("c1", FILE, now, RULES))

    def record(self, events):
        for event in events:
            version = len(self.envelopes) + 1
            envelope = Envelope(event_id=f"e{version}", type=event.type, schema_version=1, service="complaints",
                                stream_id="complaint-c1", stream_version=version, position=version,
                                occurred_at=event.occurred_at, recorded_at=event.occurred_at,
                                actor={"id": "alice", "role": "agent"}, correlation_id="c", causation_id=None,
                                data=event.data, prev_hash="0" * 64, hash="0" * 64)
            self.envelopes.append(envelope)
        self.state = domain.fold("c1", self.envelopes)
        return events

    def do(self, action, now=None, **kwargs):
        return self.record(decide(self.state, action, now or FILED + timedelta(minutes=len(self.envelopes)),
                                  **kwargs))


def decide(state, action, now, **kwargs):
    if action == "classify":
        return domain.decide_classify(state, kwargs.get("category", "billing"), kwargs.get("priority", "high"), now)
    if action == "assign":
        return domain.decide_assign(state, kwargs.get("agent", "bob"), now)
    if action == "respond":
        return domain.decide_respond(state, "我们正在处理", now)
    if action == "request_info":
        return domain.decide_request_info(state, "请提供订单号", now)
    if action == "customer_replied":
        return domain.decide_customer_replied(state, "订单号 12345", now)
    if action == "escalate":
        return domain.decide_escalate(state, "needs a technician", now, RULES)
    if action == "resolve":
        return domain.decide_resolve(state, "上门更换密封圈", now)
    if action == "confirm":
        return domain.decide_confirm(state, kwargs.get("satisfied", True), kwargs.get("score", 5), now)
    if action == "reopen":
        return domain.decide_reopen(state, "still leaking", now)
    raise AssertionError(action)


SETUPS = {
    "open": [],
    "assigned": ["assign"],
    "in_progress": ["respond"],
    "waiting_on_customer": ["request_info"],
    "resolved": ["resolve"],
    "reopened": ["resolve", "reopen"],
    "closed": ["resolve", "confirm"],
}


def story_in(status):
    story = Story()
    for action in SETUPS[status]:
        story.do(action)
    assert story.state.status == status
    return story


# -- filing -------------------------------------------------------------------------

def test_file_sets_priority_and_due_times_and_opens():
    [filed] = domain.decide_file("c1", FILE, FILED, RULES)
    assert filed.type == "ComplaintFiled" and filed.data["priority"] == "normal"
    assert filed.data["first_reply_due"] == domain.iso(at(18, 15))  # 4 business hours, lunch excluded
    assert filed.data["resolution_due"] == domain.iso(at(21, 10))  # 3 working days
    state = Story().state
    assert (state.status, state.version, state.escalation_level, state.assignee) == ("open", 1, 0, None)
    assert domain.due_times(state, RULES) == {"first_reply_due": domain.iso(at(18, 15)), "next_reply_due": None,
                                              "resolution_due": domain.iso(at(21, 10))}


def test_a_grievance_of_low_urgency_is_still_normal_priority():
    [filed] = domain.decide_file("c1", {**FILE, "category": "billing", "urgency": "low"}, FILED, RULES)
    assert filed.data["priority"] == "normal"


def test_every_decided_event_matches_its_contract():
    story = Story()
    for action in ("classify", "assign", "respond", "request_info", "customer_replied", "escalate", "resolve"):
        story.do(action)
    story.do("confirm", satisfied=False, score=2)
    story.do("resolve")
    story.record(domain.decide_sla_check(story.state, FILED + timedelta(days=2, hours=1), RULES))
    story.record(domain.decide_sla_check(story.state, FILED + timedelta(days=4), RULES))
    story.record(domain.decide_sla_check(story.state, FILED + timedelta(days=6), RULES))
    assert story.state.status == "closed"
    types = {envelope.type for envelope in story.envelopes}
    assert types >= {"ComplaintFiled", "ComplaintReopened", "ComplaintConfirmationReminded", "ComplaintClosed"}
    for envelope in story.envelopes:
        load(contract.EVENT_SCHEMAS[envelope.type](), envelope.data)
    access, = domain.decide_text_access(story.state, ["summary", "description"], "get")
    assert load(contract.EVENT_SCHEMAS[access.type](), access.data)["complaint_id"] == story.state.complaint_id


# -- the state machine ----------------------------------------------------------------

@pytest.mark.parametrize("status", list(SETUPS))
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_in_every_status_is_allowed_or_a_conflict_naming_state_and_choices(status, action):
    story = story_in(status)
    allowed = domain.ALLOWED_ACTIONS[status]
    if action in allowed:
        events = decide(story.state, action, FILED + timedelta(hours=1), agent="carol")
        assert events, f"{action} in {status} decided nothing"
        return
    with pytest.raises(Conflict) as refused:
        decide(story.state, action, FILED + timedelta(hours=1), agent="carol")
    message = str(refused.value)
    assert f"cannot {action}" in message and status in message
    if status == "closed":
        assert "related_complaint_id=c1" in message
    else:
        assert ", ".join(allowed) in message


def test_a_complaint_never_filed_is_not_found():
    with pytest.raises(NotFound):
        domain.decide_respond(domain.Complaint("nope"), "hello", FILED)


def test_statuses_through_a_whole_lifecycle():
    story = Story()
    seen = [story.state.status]
    for action in ("classify", "assign", "respond", "request_info", "customer_replied", "resolve", "confirm"):
        story.do(action)
        seen.append(story.state.status)
    assert seen == ["open", "open", "assigned", "in_progress", "waiting_on_customer", "in_progress", "resolved",
                    "closed"]
    assert story.state.close_reason == "the customer confirmed being satisfied"
    assert (story.state.score, story.state.satisfied) == (5, True)


def test_stale_expected_version_is_a_conflict_naming_both_versions():
    story = Story()
    story.do("assign")
    with pytest.raises(Conflict, match="version 2, not 1"):
        domain.decide_respond(story.state, "hi", FILED, expected_version=1)
    assert domain.decide_respond(story.state, "hi", FILED, expected_version=2)


def test_assigning_the_same_agent_records_nothing_and_reassigning_names_the_previous_one():
    story = Story()
    story.do("assign", agent="bob")
    assert domain.decide_assign(story.state, "bob", FILED) == []
    [reassigned] = story.do("assign", agent="carol")
    assert reassigned.data == {"complaint_id": "c1", "agent": "carol", "previous_agent": "bob"}
    assert story.state.assignee == "carol" and story.state.status == "assigned"


def test_reassigning_while_waiting_on_the_customer_keeps_waiting():
    story = story_in("waiting_on_customer")
    story.do("assign", agent="dave")
    assert story.state.status == "waiting_on_customer" and story.state.waiting_since


def test_classify_with_the_same_values_records_nothing():
    state = Story().state
    assert domain.decide_classify(state, "after_sales", "normal", FILED) == []


def test_escalation_goes_one_level_up_and_stops_at_the_top():
    story = Story()
    for level in (1, 2, 3):
        [escalated] = story.do("escalate")
        assert escalated.data["level"] == level and escalated.data["previous_level"] == level - 1
        assert escalated.data["trigger"] == "manual" and escalated.data["target"] is None
    assert story.state.escalation_level == 3 and story.state.status == "open"
    with pytest.raises(Conflict, match="top escalation level"):
        story.do("escalate")


def test_first_reply_is_flagged_once():
    story = Story()
    [first] = story.do("respond")
    [second] = story.do("respond")
    assert first.data["first_reply"] is True and second.data["first_reply"] is False


# -- confirmation, reopen, close -----------------------------------------------------

def test_not_satisfied_reopens_and_the_score_is_asked_only_once():
    story = story_in("resolved")
    confirmed, reopened = story.do("confirm", satisfied=False, score=2)
    assert (confirmed.type, reopened.type) == ("ComplaintConfirmed", "ComplaintReopened")
    assert story.state.status == "reopened" and story.state.reopen_count == 1 and story.state.score == 2
    story.do("resolve")
    with pytest.raises(Conflict, match="asked at its first confirmation"):
        story.do("confirm", satisfied=True, score=5)
    story.do("confirm", satisfied=True, score=None)
    assert story.state.status == "closed" and story.state.score == 2 and story.state.satisfied is True


def test_a_declined_score_still_counts_as_asked():
    story = story_in("resolved")
    story.do("confirm", satisfied=False, score=None)
    story.do("resolve")
    with pytest.raises(Conflict, match="score declined"):
        story.do("confirm", satisfied=True, score=4)


def test_reopen_of_a_resolved_complaint_and_refusal_of_a_closed_one():
    story = story_in("resolved")
    [reopened] = story.do("reopen")
    assert reopened.data["reopen_count"] == 1 and story.state.resolved_at is None
    closed = story_in("closed")
    with pytest.raises(Conflict, match="closed complaint is final; file a new complaint with related_complaint_id=c1"):
        closed.do("reopen")


# -- waiting on the customer ---------------------------------------------------------

def test_asking_the_customer_counts_as_a_reply_and_stops_the_clocks_until_they_answer():
    story = Story()
    story.do("request_info", now=at(18, 11))
    state = story.state
    assert state.first_replied_at == domain.iso(at(18, 11)) and state.waiting_since == domain.iso(at(18, 11))
    dues = domain.due_times(state, RULES)
    assert dues["next_reply_due"] is None and dues["resolution_due"] is None  # stopped while waiting
    story.do("customer_replied", now=at(19, 11))  # a business day later
    dues = domain.due_times(story.state, RULES)
    assert dues["next_reply_due"] == domain.iso(at(20, 11))  # 8 h from the answer, not from the question
    assert dues["resolution_due"] == domain.iso(at(22, 10))  # one working day later than without the pause


def test_a_reply_from_the_agent_also_ends_the_wait():
    story = Story()
    story.do("request_info", now=at(18, 11))
    story.do("respond", now=at(18, 14))
    assert story.state.status == "in_progress" and story.state.waiting_since is None
    assert story.state.pauses == ((domain.iso(at(18, 11)), domain.iso(at(18, 14))),)


def test_no_breach_while_waiting_on_the_customer_across_a_weekend():
    story = Story(now=at(22, 16))  # Friday 16:00
    story.do("request_info", now=at(22, 16, 30))
    assert domain.decide_sla_check(story.state, at(26, 12), RULES) == []  # Tuesday noon, still waiting
    story.do("customer_replied", now=at(26, 12))
    # The question started the next-reply clock and the pause together: all 8 h are left from
    # Tuesday noon: 13-18 on Tuesday, 9-12 on Wednesday.
    assert domain.due_times(story.state, RULES)["next_reply_due"] == domain.iso(at(27, 12))


# -- the SLA check -----------------------------------------------------------------------

def test_warning_once_then_breach_once_with_one_escalation_naming_the_target():
    story = Story()  # first reply due Mon 15:00, warning from 14:12
    assert domain.decide_sla_check(story.state, at(18, 14), RULES) == []
    [warning] = story.record(domain.decide_sla_check(story.state, at(18, 14, 30), RULES))
    assert warning.type == "ComplaintSlaWarning" and warning.data["target"] == "first_reply"
    assert warning.data["due"] == domain.iso(at(18, 15))
    assert domain.decide_sla_check(story.state, at(18, 14, 45), RULES) == []  # warned already
    breached, escalated = story.record(domain.decide_sla_check(story.state, at(18, 15, 1), RULES))
    assert breached.type == "ComplaintSlaBreached" and breached.data["target"] == "first_reply"
    assert escalated.type == "ComplaintEscalated" and escalated.data["trigger"] == "sla_breach"
    assert "first_reply" in escalated.data["reason"] and escalated.data["level"] == 1
    assert domain.decide_sla_check(story.state, at(18, 15, 2), RULES) == []  # exactly once
    assert story.state.breaches == ({"target": "first_reply", "due": domain.iso(at(18, 15)),
                                     "breached_at": domain.iso(at(18, 15, 1))},)


def test_a_breach_found_late_is_recorded_without_a_warning_first():
    story = Story()
    events = domain.decide_sla_check(story.state, at(19, 9, 30), RULES)
    assert [event.type for event in events] == ["ComplaintSlaBreached", "ComplaintEscalated"]


def test_each_breached_target_escalates_but_never_beyond_the_top():
    story = Story()
    for _ in range(3):
        story.do("escalate")
    events = domain.decide_sla_check(story.state, at(28, 10), RULES)  # first reply and resolution both late
    assert sorted(event.data["target"] for event in events) == ["first_reply", "resolution"]
    assert {event.type for event in events} == {"ComplaintSlaBreached"}


def test_two_targets_breached_together_escalate_two_levels():
    story = Story()
    events = story.record(domain.decide_sla_check(story.state, at(28, 10), RULES))
    assert [e.data["level"] for e in events if e.type == "ComplaintEscalated"] == [1, 2]
    assert story.state.escalation_level == 2


def test_the_next_reply_clock_restarts_with_each_reply():
    story = Story()
    story.do("respond", now=at(18, 11))
    [breach, _escalation] = story.record(domain.decide_sla_check(story.state, at(19, 11, 1), RULES))
    assert breach.data["target"] == "next_reply" and breach.data["started_at"] == domain.iso(at(18, 11))
    story.do("respond", now=at(19, 12))
    assert domain.decide_sla_check(story.state, at(19, 14), RULES) == []
    late = domain.decide_sla_check(story.state, at(20, 14), RULES)
    assert [e.data["target"] for e in late if e.type == "ComplaintSlaBreached"] == ["next_reply"]


def test_a_reopen_starts_a_new_resolution_clock():
    story = Story()
    story.do("resolve", now=at(18, 11))
    story.do("reopen", now=at(25, 10))  # a week later
    assert domain.due_times(story.state, RULES)["resolution_due"] == domain.iso(at(28, 10))
    assert domain.decide_sla_check(story.state, at(25, 11), RULES) == []


def test_a_closed_or_resolved_complaint_breaches_nothing():
    for status in ("resolved", "closed"):
        state = story_in(status).state
        events = domain.decide_sla_check(state, FILED + timedelta(hours=30), RULES)
        assert not [event for event in events if event.type.startswith("ComplaintSla")]


# -- confirmation deadline ---------------------------------------------------------------

def test_an_unconfirmed_resolution_gets_a_reminder_then_closes_itself():
    story = Story()
    story.do("resolve", now=at(18, 11))
    assert domain.decide_sla_check(story.state, at(20, 10), RULES) == []  # under 2 days
    [reminder] = story.record(domain.decide_sla_check(story.state, at(20, 11), RULES))
    assert reminder.type == "ComplaintConfirmationReminded"
    assert reminder.data["closes_at"] == domain.iso(at(21, 11))
    assert domain.decide_sla_check(story.state, at(21, 10), RULES) == []
    [closed] = story.record(domain.decide_sla_check(story.state, at(21, 11), RULES))
    assert closed.type == "ComplaintClosed" and closed.data["trigger"] == "auto_close"
    assert "not confirmed within 3 days" in closed.data["reason"]
    assert story.state.status == "closed"


def test_a_late_reminder_still_leaves_the_customer_a_full_lead_before_closing():
    story = Story()
    story.do("resolve", now=at(18, 11))
    [reminder] = story.record(domain.decide_sla_check(story.state, at(25, 9), RULES))  # timer was down
    assert reminder.data["closes_at"] == domain.iso(at(26, 9))
    assert domain.decide_sla_check(story.state, at(25, 9), RULES) == []  # not in the same run again
    assert [e.type for e in domain.decide_sla_check(story.state, at(26, 9, 1), RULES)] == ["ComplaintClosed"]


def test_a_reopen_forgets_the_reminder():
    story = Story()
    story.do("resolve", now=at(18, 11))
    story.record(domain.decide_sla_check(story.state, at(20, 12), RULES))
    story.do("reopen", now=at(20, 13))
    story.do("resolve", now=at(20, 14))
    assert story.state.reminded_at is None
    assert domain.decide_sla_check(story.state, at(21, 12), RULES) == []


# -- when the timer must look next --------------------------------------------------------

TICK = timedelta(microseconds=1)


def quiet_until(story, start, moment):
    """Whether the SLA check records nothing from ``start`` up to just before ``moment``."""
    probes = [start + (moment - start) * step / 20 for step in range(20)] + [moment - TICK]
    return all(domain.decide_sla_check(story.state, probe, RULES) == [] for probe in probes)


def run_timer_on_its_schedule(story, now):
    """Check at each ``next_sla_check`` (or a tick after: breaches come strictly after the due time)."""
    recorded = []
    while (moment := domain.next_sla_check(story.state, now, RULES)) is not None:
        assert moment >= now and quiet_until(story, now, moment)
        now = moment if domain.decide_sla_check(story.state, moment, RULES) else moment + TICK
        events = story.record(domain.decide_sla_check(story.state, now, RULES))
        assert events, f"nothing to record at {now}, the moment next_sla_check gave"
        recorded += [event.type for event in events]
    return recorded, now


def test_the_next_check_is_the_first_moment_the_sla_check_records_anything():
    story = Story()
    assert domain.next_sla_check(story.state, FILED, RULES) == at(18, 14, 12)  # 80 % of 4 business hours
    recorded, now = run_timer_on_its_schedule(story, FILED)
    assert recorded == ["ComplaintSlaWarning", "ComplaintSlaBreached", "ComplaintEscalated"] * 2
    story.do("resolve", now=now)
    recorded, _ = run_timer_on_its_schedule(story, now)
    assert recorded == ["ComplaintConfirmationReminded", "ComplaintClosed"]
    assert story.state.status == "closed"


def test_while_waiting_on_the_customer_the_next_check_only_comes_early():
    story = story_in("waiting_on_customer")
    start = FILED + timedelta(hours=1)
    first = domain.next_sla_check(story.state, start, RULES)
    then = domain.next_sla_check(story.state, first, RULES)
    assert first < then and quiet_until(story, start, then)  # the targets moved out while the wait went on


def test_a_complaint_with_every_target_breached_needs_no_check_until_it_changes():
    story = Story()
    story.record(domain.decide_sla_check(story.state, FILED + timedelta(days=10), RULES))
    assert len(story.state.breached) == 2
    assert domain.next_sla_check(story.state, FILED + timedelta(days=10), RULES) is None


def test_over_spring_festival_only_the_24_hour_first_reply_cap_keeps_running():
    story = Story(now=at(9, 17, month=2))  # Friday 9 Feb 2024 17:00, the eve of the holiday week
    dues = domain.due_times(story.state, RULES)
    assert dues["first_reply_due"] == domain.iso(at(10, 17, month=2))  # the seed's 24 clock hours
    # Resolution: 1 h on Friday, 10-17 Feb off, make-up Sunday 18 Feb 8 h, Mon 19 8 h,
    # Tue 20 the last 7 h: 09-12 and 13-17.
    assert dues["resolution_due"] == domain.iso(at(20, 17, month=2))
    during = domain.decide_sla_check(story.state, at(17, 12, month=2), RULES)
    assert [e.data["target"] for e in during if e.type == "ComplaintSlaBreached"] == ["first_reply"]
