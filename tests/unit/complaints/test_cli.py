"""``crm complaints ...`` without a broker: the RPC call is replaced and the output checked."""

from __future__ import annotations

import json

import pytest

from services.complaints import cli
from shared.cli import rpc
from tests.unit.cli_calls import answered_calls, run_app

VIEW = {"complaint_id": "c1", "version": 3, "customer_id": "cust-1", "status": "assigned", "escalation_level": 1,
        "priority": "high", "category": "after_sales", "urgency": "high", "channel": "phone", "assignee": "agent-li",
        "summary": "洗衣机漏水", "description": "第一次使用就漏水", "resolution": None, "texts_shown": True,
        "first_reply_due": "2024-03-18T07:00:00.000000Z", "next_reply_due": None,
        "resolution_due": "2024-03-20T02:00:00.000000Z", "sla": {"first_reply": "breached"},
        "waiting_on_customer_since": None, "breaches": [{"target": "first_reply"}], "filed_at": "2024-03-18T02:00Z",
        "first_replied_at": None, "resolved_at": None, "closed_at": None, "close_reason": None, "reopen_count": 0,
        "satisfied": None, "score": None, "related_complaint_id": None, "allowed_actions": ["respond"],
        "history": [{"at": "2024-03-18T02:00Z", "type": "ComplaintFiled", "actor": {"id": "ann", "role": "agent"},
                     "note": "filed by phone"}]}


@pytest.fixture
def calls(monkeypatch):
    answers = {"get": VIEW,
               "list": {"items": [{"complaint_id": "c1", "status": "open", "summary": "洗衣机漏水", "breached": True}],
                        "page": 1, "page_size": 50, "total": 1},
               "stats": {"since": None, "until": None, "total": 0, "by_category": {"billing": 0},
                         "by_status": {"open": 0}, "first_reply_hours": {"count": 0, "median": None, "p90": None},
                         "resolution_hours": {"count": 0, "median": None, "p90": None}, "sla_compliance_pct": None,
                         "resolution_rate_pct": None, "reopen_rate_pct": None,
                         "satisfaction": {"average_score": None, "scored": 0, "satisfied_pct": None}}}
    default = {"complaint_id": "c1", "version": 2, "status": "closed"}
    with answered_calls(monkeypatch, cli, lambda method, _kwargs: answers.get(method, default)) as made:
        yield made


def run(*args):
    return run_app(cli.app, *args)


def test_file_sends_every_option_by_keyword(calls):
    result = run("file", "cust-1", "--summary", "漏水", "--description", "第一次用", "--category", "after_sales",
                 "--urgency", "high")
    assert result.exit_code == 0, result.output
    assert calls == [("complaints", "file", {"customer_id": "cust-1", "channel": "phone", "category": "after_sales",
                                             "summary": "漏水", "description": "第一次用", "urgency": "high"})]


def test_confirm_and_list_flags(calls):
    assert run("confirm", "c1", "--not-satisfied", "--score", "2").exit_code == 0
    assert calls[-1][2] == {"complaint_id": "c1", "satisfied": False, "score": 2}
    result = run("list", "--breached", "--status", "open")
    assert result.exit_code == 0 and "洗衣机漏水" in result.output and "1 of 1" in result.output
    assert calls[-1][2] == {"status": "open", "breached": True, "page": 1, "page_size": 50}


def test_show_prints_the_record_and_the_history(calls):
    result = run("show", "c1")
    assert result.exit_code == 0, result.output
    assert "resolution_due" in result.output and "agent-li" in result.output and "history" in result.output
    assert "ann (agent)" in result.output and "allowed_actions" in result.output


def test_show_as_json_prints_the_answer_unchanged(calls):
    rpc.configure(json_output=True)
    result = run("show", "c1")
    assert json.loads(result.output) == VIEW


def test_stats_prints_blanks_when_nothing_was_measured(calls):
    result = run("stats", "--since", "2024-03-01")
    assert result.exit_code == 0, result.output
    assert calls[-1][2] == {"since": "2024-03-01"} and "complaints" in result.output
