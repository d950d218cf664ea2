"""Contracts, config, sealing and the figures of ``stats``, without broker or database."""

from __future__ import annotations

from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts import complaints as contract
from contracts.catalogue import EVENTS, RPC
from services.complaints import aggregate, domain, sla, views
from services.complaints.rules import load_rules
from shared.errors import ValidationError
from shared.eventstore.envelope import NewEvent
from shared.validation import load, load_call

FILE = {"customer_id": "cust-1", "channel": "phone", "category": "billing", "summary": "多扣费",
        "description": "本月账单多扣了 30 元", "urgency": "low"}


# -- contracts ----------------------------------------------------------------------

def test_the_contract_and_the_sla_module_agree_on_the_vocabulary():
    assert contract.CATEGORIES == sla.CATEGORIES
    assert set(contract.PRIORITIES) == set(sla.PRIORITIES) and contract.URGENCIES == sla.URGENCIES
    assert contract.SLA_TARGETS == sla.TARGET_NAMES
    assert set(contract.STATUSES) == set(domain.ALLOWED_ACTIONS)


def test_the_catalogue_lists_every_event_and_method():
    assert set(EVENTS["complaints"]) >= {
        "ComplaintFiled", "ComplaintClassified", "ComplaintAssigned", "ComplaintResponded",
        "ComplaintInfoRequested", "ComplaintEscalated", "ComplaintResolved", "ComplaintConfirmed",
        "ComplaintReopened", "ComplaintClosed", "ComplaintSlaWarning", "ComplaintSlaBreached"}
    assert set(RPC["complaints"]) >= {"file", "classify", "assign", "respond", "request_info", "escalate",
                                      "resolve", "confirm", "reopen", "get", "list", "stats"}
    assert set(contract.TEXT_FIELDS) <= set(EVENTS["complaints"])


def test_file_binds_positional_arguments_in_call_order():
    loaded = load_call(contract.File(), ["cust-1", "email", "other", "s", "d", "high"], {})
    assert loaded == {"customer_id": "cust-1", "channel": "email", "category": "other", "summary": "s",
                      "description": "d", "urgency": "high", "related_complaint_id": None, "command_id": None}


@pytest.mark.parametrize("payload, field", [
    ({**FILE, "channel": "fax"}, "channel"),
    ({**FILE, "urgency": "asap"}, "urgency"),
    ({**FILE, "summary": "x" * 201}, "summary"),
    ({**FILE, "customer_id": "not an id"}, "customer_id"),
    ({**FILE, "extra": 1}, "extra"),
    ({**FILE, "description": "漏水\x00"}, "description"),
    ({**FILE, "summary": "漏水\n张伟"}, "summary"),
    ({**FILE, "summary": "\u2066漏水"}, "summary"),
])
def test_file_refuses_bad_fields_by_name(payload, field):
    with pytest.raises(ValidationError) as refused:
        load(contract.File(), payload)
    assert field in refused.value.fields


def test_texts_may_span_lines_and_lists_are_paged_within_limits():
    assert load(contract.File(), {**FILE, "description": "漏水\n\t地板泡坏了"})["description"] == "漏水\n\t地板泡坏了"
    for paging in ({"page_size": 201}, {"page": 1001}):
        with pytest.raises(ValidationError) as refused:
            load(contract.ListComplaints(), paging)
        assert set(paging) <= set(refused.value.fields)


def test_confirm_takes_a_score_from_one_to_five_or_none():
    assert load(contract.Confirm(), {"complaint_id": "c1", "satisfied": True})["score"] is None
    for bad in (0, 6, "5"):
        with pytest.raises(ValidationError) as refused:
            load(contract.Confirm(), {"complaint_id": "c1", "satisfied": True, "score": bad})
        assert "score" in refused.value.fields


def test_times_need_an_offset_and_come_out_as_utc_text():
    assert load(contract.RunSlaCheck(), {"now": "2024-03-18T10:00:00+08:00"})["now"] == "2024-03-18T02:00:00.000000Z"
    with pytest.raises(ValidationError, match="offset"):
        load(contract.RunSlaCheck(), {"now": "2024-03-18T10:00:00"})
    assert load(contract.Stats(), {"since": "2024-03-01", "until": "2024-04-01"}) == \
        {"since": "2024-03-01", "until": "2024-04-01"}
    with pytest.raises(ValidationError) as refused:
        load(contract.Stats(), {"since": "2024-04-01", "until": "2024-03-01"})
    assert "until" in refused.value.fields


# -- config --------------------------------------------------------------------------

def test_rules_come_from_config_with_defaults():
    rules = load_rules({"working_hours": {"day_start": "08:30", "breaks": [["12:00", "13:30"]]},
                        "sla": {"targets": {"low": {"first_reply": 6, "next_reply": 12, "resolution": 30}}},
                        "auto_close_days": 5, "reminder_lead_days": 2, "sla_timer_seconds": 30})
    assert rules.calendar.day_start == time(8, 30) and rules.calendar.breaks == ((time(12), time(13, 30)),)
    assert rules.policy.for_priority("low").first_reply == timedelta(hours=6)
    assert rules.policy.for_priority("critical") == sla.DEFAULT_TARGETS["critical"]
    assert (rules.auto_close_after, rules.reminder_lead) == (timedelta(days=5), timedelta(days=2))
    defaults = load_rules(None)
    assert defaults.calendar.zone == ZoneInfo("Asia/Shanghai") and defaults.calendar.day_end == time(18)
    assert defaults.auto_close_after == timedelta(days=3) and defaults.max_escalation_level == 3


def test_the_rules_fingerprint_changes_with_any_setting_and_only_then():
    fingerprint = load_rules({"auto_close_days": 5}).fingerprint
    assert load_rules({"auto_close_days": 5, "sla_timer_seconds": 5}).fingerprint == fingerprint
    assert load_rules({"auto_close_days": 4}).fingerprint != fingerprint
    assert load_rules({"auto_close_days": 5, "working_hours": {"day_end": "17:00"}}).fingerprint != fingerprint
    assert load_rules({"auto_close_days": 5, "sla": {"warn_before": 0.5}}).fingerprint != fingerprint


@pytest.mark.parametrize("config, field", [
    ({"reminder_lead_days": 3}, "reminder_lead_days"),
    ({"working_hours": {"day_start": "9am"}}, "working_hours"),
    ({"working_hours": {"timezone": "Asia/Beijing"}}, "timezone"),
    ({"working_hours": {"day_start": "18:00", "day_end": "09:00"}}, "day_end"),
    ({"sla_timer_seconds": 0}, "sla_timer_seconds"),
    ({"sla": {"first_reply_cap_hours": 48}}, "first_reply_cap_hours"),
    ({"max_escalation_level": 0}, "max_escalation_level"),
])
def test_bad_config_names_the_field(config, field):
    with pytest.raises(ValidationError) as refused:
        load_rules(config)
    assert field in str(refused.value.fields)


# -- sealing and results -----------------------------------------------------------------

class FakeKey:
    def __init__(self, subject_id):
        self.subject_id = subject_id

    def seal_fields(self, data, names, stream):
        return {key: f"enc:{self.subject_id}:{stream}:{value}" if key in names else value
                for key, value in data.items()}


class FakeKeys:
    def sealing_key(self, subject_id):
        return FakeKey(subject_id)


def test_only_free_texts_are_sealed():
    events = [NewEvent("ComplaintFiled", {"complaint_id": "c1", "summary": "s", "description": "d", "channel": "phone"}),
              NewEvent("ComplaintAssigned", {"complaint_id": "c1", "agent": "bob"}),
              NewEvent("ComplaintResolved", {"complaint_id": "c1", "resolution": "r"})]
    sealed = aggregate.seal(FakeKeys(), domain.Complaint("c1", customer_id="cust-1"), events)
    assert sealed[0].data == {"complaint_id": "c1", "summary": "enc:cust-1:complaint-c1:s",
                              "description": "enc:cust-1:complaint-c1:d", "channel": "phone"}
    assert sealed[1].data == events[1].data and sealed[2].data["resolution"] == "enc:cust-1:complaint-c1:r"


# -- stats ---------------------------------------------------------------------------------

def row(category="billing", status="closed", filed="2024-03-18T02:00:00.000000Z", replied=None, resolved=None,
        reopen_count=0, breached=False, score=None, satisfied=None):
    return {"category": category, "status": status, "filed_at": filed, "first_replied_at": replied,
            "first_resolved_at": resolved, "reopen_count": reopen_count, "breached": breached, "score": score,
            "satisfied": satisfied}


def test_stats_figures():
    rows = [
        row(replied="2024-03-18T03:00:00.000000Z", resolved="2024-03-18T06:00:00.000000Z", score=5, satisfied=True),
        row(replied="2024-03-18T04:00:00.000000Z", resolved="2024-03-19T02:00:00.000000Z", reopen_count=1,
            breached=True, score=2, satisfied=False, status="reopened"),
        row(category="after_sales", status="open", breached=True),
        row(category="after_sales", status="in_progress", replied="2024-03-18T12:00:00.000000Z"),
    ]
    figures = views.summarise(rows)
    assert figures["total"] == 4
    assert figures["by_category"]["billing"] == 2 and figures["by_category"]["after_sales"] == 2
    assert figures["by_category"]["other"] == 0 and figures["by_status"]["open"] == 1
    assert figures["first_reply_hours"] == {"count": 3, "median": 2.0, "p90": 10.0}
    assert figures["resolution_hours"] == {"count": 2, "median": 14.0, "p90": 24.0}
    assert figures["sla_compliance_pct"] == 50.0 and figures["resolution_rate_pct"] == 50.0
    assert figures["reopen_rate_pct"] == 50.0
    assert figures["satisfaction"] == {"average_score": 3.5, "scored": 2, "satisfied_pct": 50.0}


def test_stats_of_nothing_are_blanks_not_errors():
    figures = views.summarise([])
    assert figures["total"] == 0 and figures["sla_compliance_pct"] is None
    assert figures["first_reply_hours"] == {"count": 0, "median": None, "p90": None}
    assert figures["satisfaction"]["average_score"] is None


def test_a_bare_day_is_midnight_in_the_working_time_zone():
    assert views.window("2024-03-01", None, ZoneInfo("Asia/Shanghai")) == ("2024-02-29T16:00:00.000000Z", None)


def test_the_bench_files_valid_complaints():
    from shared.bench.complaints import complaint

    assert load(contract.File(), complaint("cust-1", 7))["summary"].startswith("Bench complaint 7")
