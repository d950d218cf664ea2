"""SLA policy, due times and status against hand-worked dates.

Calendar: Asia/Shanghai, 09:00-18:00 with lunch 12-13, so 8 business hours a
day. Default targets in business hours (first reply / next reply / resolution):
critical 1/2/8, high 2/4/16, normal 4/8/24, low 8/16/40; first reply capped at
24 clock hours; warning at 80 %. March 2024 has no holiday: Fri 15, Sat 16,
Mon 18 ... Fri 22.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.complaints.sla import DEFAULT_TARGETS, SlaPolicy, deadlines, priority_for, sla_status
from shared.errors import ValidationError
from shared.working_calendar import WorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = timedelta(hours=1)
CAL = WorkingCalendar()
POLICY = SlaPolicy()


def at(year, month, day, hour, minute=0):
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def states(status):
    return {entry["target"]: entry["state"] for entry in status}


# --- priority ----------------------------------------------------------------------

@pytest.mark.parametrize("urgency, category, priority", [
    ("low", "product_inquiry", "low"),
    ("low", "billing", "normal"),  # a grievance is never low
    ("low", "service_attitude", "normal"),
    ("medium", "other", "normal"),
    ("medium", "billing", "normal"),
    ("high", "technical_support", "high"),
    ("critical", "after_sales", "critical"),
])
def test_priority_follows_urgency(urgency, category, priority):
    assert priority_for(urgency, category) == priority


@pytest.mark.parametrize("urgency, category, field", [("urgent", "billing", "urgency"), ("low", "refund", "category")])
def test_unknown_urgency_or_category_is_refused_naming_the_field(urgency, category, field):
    with pytest.raises(ValidationError) as refused:
        priority_for(urgency, category)
    assert list(refused.value.fields) == [field]


# --- deadlines ------------------------------------------------------------------------

def test_low_priority_filed_friday_evening_is_due_within_24_clock_hours():
    filed = at(2024, 3, 15, 20)
    # Business hours alone: Mon 09-12 + 13-18 = 8 h -> Mon 18:00, 46 hours after filing.
    assert CAL.add_business_time(filed, 8 * HOUR) == at(2024, 3, 18, 18)
    due = deadlines(POLICY, CAL, filed, "low")
    assert due == {
        "first_reply_due": at(2024, 3, 16, 20),  # the 24-hour cap: Saturday 20:00
        "next_reply_due": None,
        "resolution_due": at(2024, 3, 22, 18),  # 40 h = Mon-Fri of the next week
    }


def test_low_priority_filed_on_a_weekday_morning_the_two_rules_agree():
    # Mon 10-12, 13-18 (7 h), Tue 09-10 -> Tue 10:00, exactly 24 h later.
    assert deadlines(POLICY, CAL, at(2024, 3, 18, 10), "low")["first_reply_due"] == at(2024, 3, 19, 10)


def test_higher_priorities_answer_within_business_hours():
    # normal, 4 h: Mon 10-12, 13-15.
    assert deadlines(POLICY, CAL, at(2024, 3, 18, 10), "normal")["first_reply_due"] == at(2024, 3, 18, 15)
    # critical, 1 h: Thu 17:30-18:00, Fri 09:00-09:30.
    assert deadlines(POLICY, CAL, at(2024, 3, 14, 17, 30), "critical")["first_reply_due"] == at(2024, 3, 15, 9, 30)


def test_critical_filed_on_the_eve_of_spring_festival_still_gets_its_reply_within_24_hours():
    # Fri 9 Feb 2024 17:30: business time would resume only on Sun 18 Feb (make-up day) 09:30.
    filed = at(2024, 2, 9, 17, 30)
    assert CAL.add_business_time(filed, HOUR) == at(2024, 2, 18, 9, 30)
    assert deadlines(POLICY, CAL, filed, "critical")["first_reply_due"] == at(2024, 2, 10, 17, 30)


FILED = at(2024, 3, 15, 10)  # Friday
REPLIED = at(2024, 3, 15, 11)
ASKED = at(2024, 3, 15, 15)  # the agent asks the customer, then waits until Monday 11:00
WAITING = [(ASKED, at(2024, 3, 18, 11))]


def test_waiting_on_the_customer_across_a_weekend_moves_deadlines_by_the_paused_business_time():
    before = deadlines(POLICY, CAL, FILED, "normal", REPLIED, ASKED)
    after = deadlines(POLICY, CAL, FILED, "normal", REPLIED, ASKED, WAITING)
    paused = 5 * HOUR  # Fri 15-18 (3 h) + Mon 09-11 (2 h); the weekend is not working time anyway
    assert before["next_reply_due"] == at(2024, 3, 18, 15)  # Fri 15-18, Mon 09-12, 13-15
    assert before["resolution_due"] == at(2024, 3, 20, 10)  # Fri 7 h, Mon 8, Tue 8, Wed 09-10
    assert after == {
        "first_reply_due": at(2024, 3, 15, 15),  # used up before the wait began
        "next_reply_due": at(2024, 3, 19, 11),  # Mon 11-12, 13-18, Tue 09-11
        "resolution_due": at(2024, 3, 20, 16),  # Fri 4 h, Mon 6, Tue 8, Wed 09-12, 13-16
    }
    for target in ("next_reply_due", "resolution_due"):
        assert CAL.business_time_between(before[target], after[target]) == paused


def test_a_wait_still_open_leaves_the_stopped_targets_without_a_due_time():
    due = deadlines(POLICY, CAL, FILED, "normal", REPLIED, ASKED, [(ASKED, None)])
    assert due == {"first_reply_due": at(2024, 3, 15, 15), "next_reply_due": None, "resolution_due": None}


def test_the_24_hour_cap_moves_by_the_paused_clock_time():
    waiting = [(at(2024, 3, 16, 10), at(2024, 3, 16, 12))]  # two hours on Saturday
    assert deadlines(POLICY, CAL, at(2024, 3, 15, 20), "low", pauses=waiting)["first_reply_due"] == at(2024, 3, 16, 22)


# --- status for the timer ------------------------------------------------------------------

MONDAY_10 = at(2024, 3, 18, 10)


@pytest.mark.parametrize("now, first_reply", [
    (at(2024, 3, 18, 14), "ok"),
    (at(2024, 3, 18, 14, 12), "warning"),  # 80 % of 4 h = 3 h 12 min: Mon 10-12, 13:00-14:12
    (at(2024, 3, 18, 15), "warning"),  # on the due instant the target is still met
    (at(2024, 3, 18, 15, 1), "breached"),
])
def test_first_reply_warning_then_breach(now, first_reply):
    status = sla_status(now, POLICY, CAL, MONDAY_10, "normal")
    assert status[0] == {"target": "first_reply", "due": at(2024, 3, 18, 15), "warn_at": at(2024, 3, 18, 14, 12),
                         "state": first_reply}
    # Resolution, 24 h: Mon 7, Tue 8, Wed 8, Thu 09-10; warning at 19.2 h = Wed 14:12.
    assert status[1] == {"target": "resolution", "due": at(2024, 3, 21, 10), "warn_at": at(2024, 3, 20, 14, 12),
                         "state": "ok"}


def test_after_the_first_reply_the_next_reply_clock_runs():
    # 8 h from Mon 11:00: Mon 11-12, 13-18, Tue 09-11; warning at 6.4 h = Tue 09:24.
    status = sla_status(at(2024, 3, 19, 9, 30), POLICY, CAL, MONDAY_10, "normal", at(2024, 3, 18, 11))
    assert [entry["target"] for entry in status] == ["next_reply", "resolution"]
    assert status[0]["due"] == at(2024, 3, 19, 11) and status[0]["warn_at"] == at(2024, 3, 19, 9, 24)
    assert states(status) == {"next_reply": "warning", "resolution": "ok"}


def test_a_resolved_complaint_has_no_running_targets():
    assert sla_status(at(2024, 4, 1, 9), POLICY, CAL, MONDAY_10, "normal", at(2024, 3, 18, 11),
                      resolved_at=at(2024, 3, 19, 9)) == []


def test_the_24_hour_cap_drives_the_warning_on_a_weekend():
    filed = at(2024, 3, 15, 20)
    # 80 % of 24 h = 19 h 12 min after Friday 20:00 -> Saturday 15:12; due Saturday 20:00.
    status = sla_status(at(2024, 3, 16, 16), POLICY, CAL, filed, "low")
    assert status[0] == {"target": "first_reply", "due": at(2024, 3, 16, 20), "warn_at": at(2024, 3, 16, 15, 12),
                         "state": "warning"}
    assert states(sla_status(at(2024, 3, 16, 20, 1), POLICY, CAL, filed, "low"))["first_reply"] == "breached"


def test_while_waiting_the_due_time_is_projected_from_now_and_earlier_breaches_stand():
    # critical: resolution 8 h from Mon 10:00 -> Tue 10:00, breached before the wait began at Tue 11:00.
    asked = at(2024, 3, 19, 11)
    now = at(2024, 3, 20, 10)
    status = sla_status(now, POLICY, CAL, MONDAY_10, "critical", at(2024, 3, 18, 10, 30), asked,
                        pauses=[(asked, None)])
    assert status == [
        # next reply, 2 h, stopped at the ask: as if answered now, Wed 10:00 + 2 h; warning at + 1.6 h.
        {"target": "next_reply", "due": at(2024, 3, 20, 12), "warn_at": at(2024, 3, 20, 11, 36), "state": "ok"},
        {"target": "resolution", "due": at(2024, 3, 19, 10), "warn_at": at(2024, 3, 18, 17, 24), "state": "breached"},
    ]


# --- policy configuration ----------------------------------------------------------------------

def test_defaults_keep_the_seed_promise_and_order_priorities():
    assert POLICY.first_reply_cap == 24 * HOUR and POLICY.warn_before == 0.8
    assert DEFAULT_TARGETS["low"].first_reply <= 24 * HOUR
    firsts = [DEFAULT_TARGETS[p].first_reply for p in ("critical", "high", "normal", "low")]
    assert firsts == sorted(firsts)


def test_policy_loads_from_config_and_round_trips():
    policy = SlaPolicy.from_config({"warn_before": 0.9, "first_reply_cap_hours": 12,
                                    "targets": {"low": {"first_reply": 6, "next_reply": 12, "resolution": 30}}})
    assert policy.warn_before == 0.9 and policy.first_reply_cap == 12 * HOUR
    assert policy.for_priority("low").first_reply == 6 * HOUR
    assert policy.for_priority("high") == DEFAULT_TARGETS["high"]
    assert SlaPolicy.from_config({}) == POLICY
    assert SlaPolicy.from_config(policy.to_config()) == policy


@pytest.mark.parametrize("config, errors", [
    ({"targets": {"high": {"first_reply": 0, "next_reply": 4, "resolution": 16}}},
     {"targets": {"high": {"first_reply": ["Must be greater than 0."]}}}),
    ({"targets": {"low": {"first_reply": 50, "next_reply": 16, "resolution": 40}}},
     {"targets": {"low": {"first_reply": ["must not exceed resolution"]}}}),
    ({"targets": {"low": {"first_reply": 8}}},
     {"targets": {"low": {"next_reply": ["Missing data for required field."],
                          "resolution": ["Missing data for required field."]}}}),
    ({"targets": {"urgent": {"first_reply": 1, "next_reply": 2, "resolution": 8}}},
     {"targets": {"urgent": ["Unknown field."]}}),
    ({"warn_before": 1.5}, {"warn_before": ["Must be greater than 0 and less than 1."]}),
    ({"warn_before": "soon"}, {"warn_before": ["Not a valid number."]}),
    ({"first_reply_cap_hours": 48},
     {"first_reply_cap_hours": ["Must be greater than 0 and less than or equal to 24."]}),
])
def test_bad_policy_config_is_refused_naming_the_field(config, errors):
    with pytest.raises(ValidationError) as refused:
        SlaPolicy.from_config(config)
    assert refused.value.fields == errors


def test_an_unknown_priority_is_refused():
    with pytest.raises(ValidationError) as refused:
        deadlines(POLICY, CAL, MONDAY_10, "urgent")
    assert list(refused.value.fields) == ["priority"]
