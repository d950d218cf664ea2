"""``crm callbacks ...`` without a broker: the RPC call is replaced and the output checked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from services.callbacks import cli
from shared.cli import rpc

GROUP = {"attempts": 2, "callbacks_attempted": 2, "callbacks_reached": 1, "success_rate_pct": 50.0,
         "meets_success_target": False, "reached_calls": 1, "script_followed": 1, "compliance_pct": 100.0,
         "meets_compliance_target": True, "average_satisfaction": 4.0, "scored": 1}
ANSWERS = {
    "list_due": {"before": "2025-11-04T10:00:00.000000Z", "assignee": "agent-li",
                 "items": [{"callback_id": "cb-1", "kind": "satisfaction", "due_at": "2025-11-04T01:00:00.000000Z",
                            "priority": "high", "assignee": None, "attempts": 0, "customer_id": "cust-1"}]},
    "sample": {"kind": "lost_deal", "population": 7, "rate": 0.15, "required": 2, "share_pct": 28.6,
               "picked": [{"customer_id": "c3", "callback_id": "cb-9", "rank": 1, "reason": "rank 1 of 7"}],
               "skipped": [{"customer_id": "c5", "rank": 2, "reason": "not callable"}]},
    "kpis": {"since": "2025-11-01", "until": "2025-12-01", **GROUP, "per_agent": {"agent-li": GROUP},
             "per_kind": {"satisfaction": GROUP}, "per_day": {"2025-11-04": GROUP}, "shortfalls": []},
}


@pytest.fixture
def calls(monkeypatch):
    made = []

    def fake(service, method, **kwargs):
        made.append((service, method, kwargs))
        return ANSWERS.get(method, {"callback_id": "cb-1", "version": 2, "status": "scheduled"})

    monkeypatch.setattr(cli, "rpc_call", fake)
    rpc.configure()
    yield made
    rpc.configure()


def run(*args):
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli.app, list(args))


def test_schedule_and_record_send_their_options_by_keyword(calls):
    assert run("schedule", "cust-1", "--kind", "lost_customer", "--assignee", "agent-li").exit_code == 0
    result = run("record", "cb-1", "--outcome", "reached", "--satisfaction", "4", "--script-not-followed",
                 "--issue", "漏水", "--issue-category", "after_sales")
    assert result.exit_code == 0, result.output
    assert calls == [
        ("callbacks", "schedule", {"customer_id": "cust-1", "kind": "lost_customer", "priority": "normal",
                                   "assignee": "agent-li"}),
        ("callbacks", "record_attempt", {"callback_id": "cb-1", "outcome": "reached", "satisfaction": 4,
                                         "script_followed": False, "issue": "漏水", "issue_category": "after_sales"})]


def test_due_sample_and_kpis_print_tables(calls):
    due = run("due", "--assignee", "agent-li", "--no-pool")
    assert due.exit_code == 0 and "cb-1" in due.output and "satisfaction" in due.output
    assert calls[0] == ("callbacks", "list_due", {"assignee": "agent-li", "include_pool": False, "limit": 100})
    sample = run("sample", "c1", "c2", "c3", "--rate", "0.2")
    assert sample.exit_code == 0 and "picked 1 of 7" in sample.output and "not callable" in sample.output
    assert calls[1][2]["customer_ids"] == ["c1", "c2", "c3"] and calls[1][2]["rate"] == 0.2
    kpis = run("kpis", "--since", "2025-11-01", "--until", "2025-12-01")
    assert kpis.exit_code == 0 and "agent-li" in kpis.output and "success" in kpis.output
