"""``crm campaigns ...`` without a broker: the RPC call is replaced and the output checked."""

from __future__ import annotations

import json

import pytest

from services.campaigns import cli
from tests.unit.cli_calls import answered_calls, run_app

RUNNING = {"run_id": "r1", "campaign_id": "k1", "on_date": "2027-02-06", "status": "running", "examined": 500,
           "queued": 400, "sent": 400, "failed": 0, "skipped": {"no_consent": 100}, "started_at": "t",
           "finished_at": None}
DONE = {**RUNNING, "status": "completed", "examined": 1000, "queued": 800, "sent": 799, "failed": 1,
        "skipped": {"no_consent": 200}, "finished_at": "t2"}


@pytest.fixture
def calls(monkeypatch):
    statuses = iter([RUNNING, DONE])

    def answer(method, _kwargs):
        if method == "run_status":
            return next(statuses)
        if method == "trigger":
            return {"run_id": "r1", "version": 1, "status": "started"}
        return {"campaign_id": "k1", "version": 1, "status": "active"}

    monkeypatch.setattr(cli, "FOLLOW_POLL_SECONDS", 0)
    with answered_calls(monkeypatch, cli, answer) as made:
        yield made


def run(*args):
    return run_app(cli.app, *args)


def test_create_shapes_the_segment_window_and_templates(calls, tmp_path):
    extra = tmp_path / "templates.json"
    extra.write_text(json.dumps([{"tier": "partner", "locale": "zh-CN", "body": "尊敬的{{ name }}"}]))
    result = run("create", "--name", "春节", "--kind", "holiday", "--holiday", "spring_festival",
                 "--template", "{{ name }}，春节快乐", "--templates", str(extra), "--tier", "partner",
                 "--window-start", "10:00")
    assert result.exit_code == 0, result.output
    [(service, method, kwargs)] = calls
    assert (service, method) == ("campaigns", "create")
    assert kwargs["templates"] == [{"body": "{{ name }}，春节快乐"},
                                   {"tier": "partner", "locale": "zh-CN", "body": "尊敬的{{ name }}"}]
    assert kwargs["segment"] == {"tiers": ["partner"], "tags": [], "locales": []}
    assert kwargs["send_window"] == {"start": "10:00"} and "channel" not in kwargs


def test_trigger_follow_polls_until_the_run_ends_and_prints_its_counts(calls):
    result = run("trigger", "k1", "2027-02-06", "--follow")
    assert result.exit_code == 0, result.output
    assert [method for _service, method, _kwargs in calls] == ["trigger", "run_status", "run_status"]
    assert "799" in result.output and "completed" in result.output
