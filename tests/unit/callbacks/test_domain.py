"""The callback rules without a broker: calling windows, retries, sampling and KPI maths."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.callbacks import domain
from services.callbacks.rules import load_rules
from shared.errors import Conflict, NotFound, ValidationError
from shared.eventstore.envelope import Envelope

SHANGHAI, NEW_YORK = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")
RULES = domain.Rules()
CUSTOMER = {"status": "active", "timezone": "Asia/Shanghai", "tier": "partner", "callbacks_consent": True}


def at(zone, *parts) -> datetime:
    return datetime(*parts, tzinfo=zone)


def fold(events: list, callback_id: str = "cb-1") -> domain.Callback:
    envelopes = [Envelope(event_id=f"e{n}", type=event.type, schema_version=1, service="callbacks",
                          stream_id=domain.stream_of(callback_id), stream_version=n, position=n,
                          occurred_at=event.occurred_at, recorded_at=event.occurred_at,
                          actor={"id": "t", "role": "agent"}, correlation_id="c", causation_id=None,
                          data=event.data, prev_hash="0" * 64, hash="0" * 64)
                 for n, event in enumerate(events, start=1)]
    return domain.fold(callback_id, envelopes)


def scheduled(now=at(SHANGHAI, 2025, 9, 30, 10), customer=CUSTOMER, rules=RULES, **command) -> domain.Callback:
    command = {"customer_id": "cust-1", "kind": "satisfaction", **command}
    return fold(domain.decide_schedule("cb-1", command, customer, now, rules))


def attempt(state, outcome, now, rules=RULES, **details):
    events = domain.decide_attempt(state, {"outcome": outcome, **details}, "agent-wang", now, rules)
    return events, fold_more(state, events)


def fold_more(state, events):
    for offset, event in enumerate(events, start=1):
        state = domain.evolve(state, event.type, event.data, state.version + 1, event.occurred_at)
    return state


# -- the calling window ------------------------------------------------------------------

def test_a_due_time_inside_the_window_stays_and_one_outside_moves_to_the_next_opening_saying_why():
    inside = scheduled(due_at=domain.iso(at(SHANGHAI, 2025, 9, 30, 19, 59)))
    assert inside.due_at == domain.iso(at(SHANGHAI, 2025, 9, 30, 19, 59))
    events = domain.decide_schedule("cb-2", {"customer_id": "c", "kind": "periodic",
                                             "due_at": domain.iso(at(SHANGHAI, 2025, 9, 29, 20, 0))},
                                    CUSTOMER, at(SHANGHAI, 2025, 9, 29, 12), RULES)
    data = events[0].data
    assert data["due_at"] == domain.iso(at(SHANGHAI, 2025, 9, 30, 9))
    assert data["requested_at"] == domain.iso(at(SHANGHAI, 2025, 9, 29, 20))
    assert "20:00 is outside the calling window 09:00-20:00" in data["moved"]


def test_national_day_week_is_skipped_and_the_make_up_saturday_is_a_calling_day():
    # 30 Sep 2025, 19:30: the retry an hour later falls on 1 Oct, the first day of the National Day holiday
    _events, state = attempt(scheduled(), "busy", at(SHANGHAI, 2025, 9, 30, 19, 30))
    assert state.due_at == domain.iso(at(SHANGHAI, 2025, 10, 9, 9))  # 1-8 Oct are off
    placed, moved = domain.place_in_window(RULES, "Asia/Shanghai", at(SHANGHAI, 2025, 10, 3, 10))
    assert placed == at(SHANGHAI, 2025, 10, 9, 9) and "2025-10-03 is not a working day" in moved
    # Saturday 11 Oct 2025 is a 调休 make-up working day; Sunday 12 Oct is not
    assert domain.place_in_window(RULES, "Asia/Shanghai", at(SHANGHAI, 2025, 10, 11, 10)) == \
        (at(SHANGHAI, 2025, 10, 11, 10), None)
    assert domain.place_in_window(RULES, "Asia/Shanghai", at(SHANGHAI, 2025, 10, 12, 10))[0] == \
        at(SHANGHAI, 2025, 10, 13, 9)


def test_an_ordinary_weekend_is_skipped():
    friday_evening = at(SHANGHAI, 2025, 11, 14, 19, 30)
    _events, state = attempt(scheduled(now=friday_evening), "no_answer", friday_evening)
    assert state.due_at == domain.iso(at(SHANGHAI, 2025, 11, 17, 9))  # Monday 09:00


def test_the_window_is_in_the_customer_s_own_time_zone():
    in_new_york = {**CUSTOMER, "timezone": "America/New_York"}
    # 22:30 in Shanghai is 09:30 in New York (EST, UTC-5): inside a New York customer's window
    shanghai_evening = at(SHANGHAI, 2025, 11, 4, 22, 30)
    state = scheduled(now=shanghai_evening, customer=in_new_york)
    assert state.due_at == domain.iso(shanghai_evening) and state.timezone == "America/New_York"
    # 21:30 in Shanghai is 08:30 in New York: moved to 09:00 there
    early = scheduled(now=at(SHANGHAI, 2025, 11, 4, 21, 30), customer=in_new_york)
    assert early.due_at == domain.iso(at(NEW_YORK, 2025, 11, 4, 9))
    # after 20:00 New York time, the retry waits for 09:00 New York time the next working day
    _events, retried = attempt(state, "voicemail", at(NEW_YORK, 2025, 11, 4, 19, 30))
    assert retried.due_at == domain.iso(at(NEW_YORK, 2025, 11, 5, 9))


def test_the_retry_delay_and_window_come_from_config():
    rules = load_rules({"retry_delay_minutes": 30, "max_attempts": 2,
                        "calling_window": {"day_start": "10:00", "day_end": "12:00"}})
    _events, state = attempt(scheduled(now=at(SHANGHAI, 2025, 11, 4, 10), rules=rules), "busy",
                             at(SHANGHAI, 2025, 11, 4, 11, 15), rules=rules)
    assert state.due_at == domain.iso(at(SHANGHAI, 2025, 11, 4, 11, 45))
    _events, state = attempt(state, "busy", at(SHANGHAI, 2025, 11, 4, 11, 50), rules=rules)
    assert state.status == "failed" and state.close_reason == "max_attempts"
    with pytest.raises(ValidationError) as bad:
        load_rules({"calling_window": {"day_start": "20:00", "day_end": "09:00"}})
    assert "calling_window" in bad.value.fields


# -- retries and outcomes --------------------------------------------------------------------

def test_unanswered_calls_are_retried_until_the_last_attempt_fails_the_callback():
    state = scheduled()
    moments = [at(SHANGHAI, 2025, 11, 4, 10), at(SHANGHAI, 2025, 11, 4, 12), at(SHANGHAI, 2025, 11, 4, 14)]
    for number, (outcome, moment) in enumerate(zip(("no_answer", "busy"), moments), start=1):
        events, state = attempt(state, outcome, moment)
        assert [event.type for event in events] == ["CallbackAttempted"]
        assert state.status == "scheduled" and state.attempts == number
        assert state.due_at == events[0].data["next_due_at"] == domain.iso(moment + timedelta(hours=1))
    events, state = attempt(state, "voicemail", moments[2])
    assert [event.type for event in events] == ["CallbackAttempted", "CallbackFailed"]
    assert events[0].data["next_due_at"] is None
    assert (state.status, state.close_reason, state.attempts) == ("failed", "max_attempts", 3)


@pytest.mark.parametrize("outcome", ["wrong_number", "refused"])
def test_wrong_number_and_refused_are_final_at_once(outcome):
    events, state = attempt(scheduled(), outcome, at(SHANGHAI, 2025, 11, 4, 10))
    assert [event.type for event in events] == ["CallbackAttempted", "CallbackFailed"]
    assert (state.status, state.close_reason, state.attempts) == ("failed", outcome, 1)


def test_a_reached_call_completes_and_an_issue_found_is_raised():
    events, state = attempt(scheduled(), "reached", at(SHANGHAI, 2025, 11, 4, 23), satisfaction=2,
                            script_followed=False, notes="n", issue="still leaking", issue_category="after_sales")
    assert [event.type for event in events] == ["CallbackAttempted", "CallbackIssueRaised", "CallbackCompleted"]
    assert events[1].data == {"callback_id": "cb-1", "customer_id": "cust-1", "issue": "still leaking",
                              "category": "after_sales", "attempt": 1}
    assert (state.status, state.satisfaction, state.script_followed) == ("completed", 2, False)


def test_an_attempt_on_a_closed_callback_and_a_stale_version_are_conflicts():
    _events, done = attempt(scheduled(), "refused", at(SHANGHAI, 2025, 11, 4, 10))
    with pytest.raises(Conflict, match="it is failed \\(refused\\)"):
        attempt(done, "reached", at(SHANGHAI, 2025, 11, 4, 11), script_followed=True)
    with pytest.raises(Conflict, match="version 1, not 5"):
        attempt(scheduled(), "busy", at(SHANGHAI, 2025, 11, 4, 11), expected_version=5)
    with pytest.raises(NotFound):
        attempt(domain.Callback("nope"), "busy", at(SHANGHAI, 2025, 11, 4, 11))


def test_a_resolution_older_than_the_set_age_gets_no_satisfaction_call():
    resolved = domain.iso(at(SHANGHAI, 2025, 11, 4, 10))
    assert not domain.too_late_to_ask(resolved, at(SHANGHAI, 2025, 11, 11, 10), RULES)  # 7 days: still asked
    assert domain.too_late_to_ask(resolved, at(SHANGHAI, 2025, 11, 11, 10, 1), RULES)
    assert domain.too_late_to_ask(resolved, at(SHANGHAI, 2025, 11, 5, 10), load_rules({"satisfaction_max_age_days": 0.5}))


def test_customers_who_may_not_be_called_are_refused():
    for customer, message in [(None, "no customer"), ({**CUSTOMER, "status": "erased"}, "erased"),
                              ({**CUSTOMER, "callbacks_consent": False}, "consent")]:
        with pytest.raises((Conflict, NotFound), match=message):
            scheduled(customer=customer)


def test_an_overdue_assigned_callback_returns_to_the_pool_and_a_pooled_one_stays():
    state = scheduled(assignee="agent-li", due_at=domain.iso(at(SHANGHAI, 2025, 11, 4, 10)))
    assert domain.decide_return_to_pool(state, at(SHANGHAI, 2025, 11, 4, 12), RULES) == []
    [event] = domain.decide_return_to_pool(state, at(SHANGHAI, 2025, 11, 4, 12, 1), RULES)
    assert (event.data["previous_assignee"], event.data["overdue_minutes"]) == ("agent-li", 121)
    assert fold_more(state, [event]).assignee is None
    assert domain.decide_return_to_pool(scheduled(), at(SHANGHAI, 2025, 11, 5, 12), RULES) == []


# -- sampling --------------------------------------------------------------------------------

def test_a_sample_takes_at_least_the_rate_rounded_up_the_same_ones_whatever_the_order():
    ids = [f"cust-{n:03d}" for n in range(40)]
    picked, skipped = domain.pick("lost_deal", ids, 0.15, set(ids))
    assert len(picked) == 6 and skipped == []  # ceil(0.15 * 40) = 6
    again, _ = domain.pick("lost_deal", list(reversed(ids)), 0.15, set(ids))
    assert [entry["customer_id"] for entry in again] == [entry["customer_id"] for entry in picked]
    assert [entry["rank"] for entry in picked] == [1, 2, 3, 4, 5, 6]
    assert all("rank" in entry["reason"] and "SHA-256" in entry["reason"] for entry in picked)
    assert len(domain.pick("lost_deal", ids[:7], 0.15, set(ids))[0]) == 2  # 1.05 → 2
    assert len(domain.pick("lost_deal", ids[:20], 0.15, set(ids))[0]) == 3  # exactly 3, not 4


def test_a_customer_who_may_not_be_called_is_skipped_with_the_reason_and_the_next_takes_the_place():
    ids = [f"cust-{n:03d}" for n in range(20)]
    first, _ = domain.pick("lost_deal", ids, 0.15, set(ids))
    barred = first[0]["customer_id"]
    picked, skipped = domain.pick("lost_deal", ids, 0.15, set(ids) - {barred})
    assert len(picked) == 3 and barred not in [entry["customer_id"] for entry in picked]
    assert skipped == [{"customer_id": barred, "rank": 1,
                        "reason": "not callable (unknown, erased or no callbacks consent)"}]


# -- KPIs ------------------------------------------------------------------------------------

def row(callback_id, agent, outcome, satisfaction=None, followed=None, kind="satisfaction", day="2025-11-04"):
    return {"callback_id": callback_id, "agent": agent, "kind": kind, "day": day, "outcome": outcome,
            "satisfaction": satisfaction, "script_followed": followed}


def test_kpis_by_hand():
    rows = [row("cb1", "a1", "reached", 5, True),
            row("cb2", "a1", "no_answer"), row("cb2", "a1", "reached", 3, False, day="2025-11-05"),
            row("cb3", "a2", "busy", kind="lost_deal"), row("cb3", "a2", "wrong_number", kind="lost_deal"),
            row("cb4", "a2", "reached", 4, True, kind="lost_deal")]
    figures = domain.kpi_figures(rows)
    assert (figures["callbacks_attempted"], figures["callbacks_reached"], figures["success_rate_pct"]) == (4, 3, 75.0)
    assert (figures["reached_calls"], figures["script_followed"], figures["compliance_pct"]) == (3, 2, 66.7)
    assert figures["average_satisfaction"] == 4.0 and figures["attempts"] == 6
    a1, a2 = figures["per_agent"]["a1"], figures["per_agent"]["a2"]
    assert (a1["success_rate_pct"], a1["compliance_pct"], a1["average_satisfaction"]) == (100.0, 50.0, 4.0)
    assert (a2["success_rate_pct"], a2["compliance_pct"], a2["average_satisfaction"]) == (50.0, 100.0, 4.0)
    assert figures["per_kind"]["lost_deal"]["success_rate_pct"] == 50.0
    assert figures["per_day"]["2025-11-05"]["callbacks_attempted"] == 1
    short = {(entry["scope"], entry["key"], entry["kpi"]) for entry in figures["shortfalls"]}
    assert ("agent", "a1", "compliance_pct") in short and ("agent", "a1", "success_rate_pct") not in short
    assert ("agent", "a2", "success_rate_pct") in short and ("overall", None, "success_rate_pct") in short
    assert a1["meets_success_target"] is True and a1["meets_compliance_target"] is False


def test_kpis_of_nothing_are_blank_not_zero():
    figures = domain.kpi_figures([])
    assert figures["success_rate_pct"] is None and figures["shortfalls"] == [] and figures["per_agent"] == {}


def test_a_periodic_rule_is_set_once_and_changed_only_when_it_differs():
    now = datetime(2025, 11, 4, tzinfo=timezone.utc)
    [event] = domain.decide_periodic_rule({}, {"tier": "partner", "every_days": 30, "priority": "normal"}, now)
    assert event.data["previous_every_days"] is None
    current = {"partner": {"every_days": 30, "priority": "normal"}}
    assert domain.decide_periodic_rule(current, {"tier": "partner", "every_days": 30, "priority": "normal"}, now) == []
    assert domain.periodic_period(now, 30) + 1 == domain.periodic_period(now + timedelta(days=30), 30)
