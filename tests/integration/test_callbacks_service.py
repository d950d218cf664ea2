"""The callbacks service end to end, beside the real customers and complaints services.

All three run against real RabbitMQ (a fresh virtual host per test) and
real databases, one per service: SQLite files, or PostgreSQL databases
where storage matters (the complaint → callback → complaint round trip and
erasure). Nothing sleeps: tests wait for what they expect with a deadline.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kombu import Connection
from nameko.exceptions import RemoteError
from nameko.testing.services import entrypoint_waiter

from contracts.callbacks import linked_complaint_id
from services.callbacks.domain import iso as domain_iso
from services.callbacks.service import CallbacksService
from services.complaints.callback_issues import FileComplaintForCallbackIssue
from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.auth import issue_token
from shared.consumers import as_envelope
from tests.forged_tokens import claims, signed
from tests import support
from tests.support import ISSUER_KEY, event_log, private_vhost, rpc_as, running, service_config, wait_for

call = functools.partial(support.call, service="callbacks")
remote_error = functools.partial(support.remote_error, service="callbacks")

ALICE = {"name": "张伟", "phone": "13812345678", "email": "zhangwei@example.com", "tier": "partner",
         "consents": ["callbacks"]}
LEAK = {"channel": "phone", "category": "after_sales", "summary": "热水器漏水", "description": "新装的热水器漏水",
        "urgency": "medium"}
NOTE = "客户张伟说师傅上门很准时 13812345678"
ISSUE = "热水器修好后又开始漏水\n客户希望换新"
FAR = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()


# -- fixtures ------------------------------------------------------------------------

@pytest.fixture
def amqp_uri():
    with private_vhost(f"crm-callbacks-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


def _config(tmp_path, amqp_uri, urls):
    settings = service_config(tmp_path, amqp_uri, **urls)
    settings["COMPLAINTS"] = {"sla_timer_seconds": 3600}
    settings["CALLBACKS"] = {"timer_seconds": 3600}  # the tests run the sweep themselves
    return settings


@pytest.fixture
def config(tmp_path, database_url, request, amqp_uri):
    """One database per service, all of ``database_url``'s kind."""
    if database_url.startswith("sqlite"):
        urls = {name: f"sqlite:///{tmp_path / f'{name}.db'}" for name in ("complaints", "callbacks")}
    else:
        make = request.getfixturevalue("postgres_url_factory")
        urls = {name: make() for name in ("complaints", "callbacks")}
    return _config(tmp_path, amqp_uri, {"customers": database_url, **urls})


@pytest.fixture
def sqlite_config(tmp_path, amqp_uri):
    return _config(tmp_path, amqp_uri, {name: f"sqlite:///{tmp_path / f'{name}.db'}"
                                        for name in ("customers", "complaints", "callbacks")})


@pytest.fixture
def crm(config):
    with running(CustomersService, config), running(ComplaintsService, config) as complaints, \
            running(CallbacksService, config) as callbacks:
        yield config, complaints, callbacks


@pytest.fixture
def quick(sqlite_config):
    """The three services on SQLite: for the tests where the backend does not matter."""
    with running(CustomersService, sqlite_config), running(ComplaintsService, sqlite_config), \
            running(CallbacksService, sqlite_config) as callbacks:
        yield sqlite_config, callbacks


@pytest.fixture
def ticking(sqlite_config):
    """The three services on SQLite, the callbacks sweep timer ticking beside the tests' own sweeps."""
    sqlite_config["CALLBACKS"] = {"timer_seconds": 0.3}
    with running(CustomersService, sqlite_config), running(ComplaintsService, sqlite_config), \
            running(CallbacksService, sqlite_config) as callbacks:
        yield sqlite_config, callbacks


# -- helpers ---------------------------------------------------------------------------

def register(config, **changes) -> str:
    return call(config, "agent", "register", **{**ALICE, **changes}, service="customers")["customer_id"]


def known(config, customer_id):
    """Wait until the callbacks service knows the customer (its own projection of the customers' log)."""
    head = call(config, "admin", "health", service="customers")["log_position"]
    wait_for(lambda: call(config, "admin", "health")["projections"]["callbacks.customers"]["positions"]
             ["customers"] >= head, what="the customers' events to reach callbacks")
    return customer_id


def queue(config, role="supervisor", actor="tester", **query) -> list[dict]:
    return call(config, role, "list_due", actor=actor, before=FAR, **query)["items"]


def schedule(config, customer_id, **changes) -> dict:
    return call(config, "agent", "schedule", customer_id, **{"kind": "maintenance_reminder", **changes})


def attempt(config, callback_id, outcome, actor="agent-wang", **details) -> dict:
    return call(config, "agent", "record_attempt", callback_id, outcome, actor=actor, **details)


def complaints_of_callback(config, callback_id) -> list[dict]:
    items = call(config, "supervisor", "list", page_size=200, service="complaints")["items"]
    views = [call(config, "supervisor", "get", item["complaint_id"], service="complaints") for item in items]
    return [view for view in views if view["callback_id"] == callback_id]


def callbacks_events(config, callback_id=None) -> list[dict]:
    found = call(config, "admin", "events_since", 0, 5000)
    return [e for e in found if callback_id is None or e["stream_id"] == f"callback-{callback_id}"]


def deliver_again(container, amqp_uri, envelope) -> None:
    """Publish a genuine event of the callbacks log again, and wait until the complaints service handled it."""
    def is_it(worker_ctx, _result, _exc_info) -> bool:
        return worker_ctx.args[0].get("event_id") == envelope["event_id"]

    with entrypoint_waiter(container, "on_upstream_event", timeout=30, callback=is_it):
        with Connection(amqp_uri) as connection:
            connection.Producer(serializer="json").publish(envelope, exchange="callbacks.events",
                                                           routing_key=envelope["type"], retry=True)


# -- the round trip: complaint → satisfaction callback → issue → complaint ---------------------

def test_a_resolved_complaint_brings_a_callback_whose_issue_becomes_exactly_one_linked_complaint(crm, amqp_uri):
    config, complaints, callbacks = crm
    customer_id = known(config, register(config))
    complaint_id = call(config, "agent", "file", customer_id, service="complaints", **LEAK)["complaint_id"]
    call(config, "agent", "resolve", complaint_id, "换了密封圈", service="complaints")

    due = wait_for(lambda: [item for item in queue(config) if item["complaint_id"] == complaint_id],
                   what="the satisfaction callback in the queue")
    assert len(due) == 1 and (due[0]["kind"], due[0]["priority"], due[0]["assignee"]) == ("satisfaction", "high", None)
    callback_id = due[0]["callback_id"]
    view = call(config, "supervisor", "get", callback_id)
    window = datetime.fromisoformat(view["due_at"]).astimezone(timezone(timedelta(hours=8)))
    assert 9 <= window.hour < 20 and view["origin"] == "complaint_resolved"

    retried = attempt(config, callback_id, "no_answer")
    assert (retried["status"], retried["attempts"]) == ("scheduled", 1)
    done = attempt(config, callback_id, "reached", satisfaction=4, script_followed=True, notes=NOTE,
                   issue=ISSUE, issue_category="after_sales")
    assert (done["status"], done["attempts"], done["issue_raised"]) == ("completed", 2, True)

    linked = wait_for(lambda: complaints_of_callback(config, callback_id), what="the complaint filed for the issue")
    raised = next(e for e in callbacks_events(config, callback_id) if e["type"] == "CallbackIssueRaised")
    assert [c["complaint_id"] for c in linked] == [linked_complaint_id(raised["event_id"])]
    assert linked[0]["description"] == ISSUE and linked[0]["category"] == "after_sales"
    assert ISSUE not in str(raised["data"])  # sealed in the callbacks' log

    # delivered twice, the reaction's effect run again (a crash before its tracking), projections rebuilt, a forged
    # copy published to the callbacks' exchange: still one complaint
    deliver_again(complaints, amqp_uri, raised)
    forged = {**raised, "event_id": str(uuid.uuid4()), "signature": None,
              "data": {**raised["data"], "issue": "forged", "category": "billing"}}
    deliver_again(complaints, amqp_uri, forged)
    refused = call(config, "admin", "health", service="complaints")["reactions"]["complaints.callback-issues"]
    assert refused["refused"]["callbacks"]["last_event_id"] == forged["event_id"]
    reaction = next(runner.consumer for runner in event_log(complaints).runners
                    if isinstance(runner.consumer, FileComplaintForCallbackIssue))
    reaction.act(as_envelope(raised))
    rebuilt = call(config, "admin", "rebuild_projections", service="complaints")
    assert all(report["equal"] for report in rebuilt)
    assert len(complaints_of_callback(config, callback_id)) == 1
    filed = [e for e in call(config, "admin", "events_since", 0, 5000, service="complaints")
             if e["type"] == "ComplaintFiled" and e["data"].get("callback_id") == callback_id]
    assert len(filed) == 1

    resolved = next(e for e in call(config, "admin", "events_since", 0, 5000, service="complaints")
                    if e["type"] == "ComplaintResolved" and e["data"]["complaint_id"] == complaint_id)
    satisfaction = next(runner.consumer for runner in event_log(callbacks).runners
                        if runner.consumer.name == "callbacks.satisfaction")
    satisfaction.act(as_envelope(resolved))  # the scheduling effect repeated: the first answer, no second callback
    assert len([item for item in queue(config) if item["complaint_id"] == complaint_id]) == 0  # completed above
    assert len([e for e in callbacks_events(config) if e["type"] == "CallbackScheduled"
                and e["data"]["complaint_id"] == complaint_id]) == 1

    call(config, "agent", "resolve", linked[0]["complaint_id"], "换新机", service="complaints")
    links = wait_for(lambda: [link for link in call(config, "supervisor", "get", callback_id)["linked_complaints"]
                              if link["status"] == "resolved"], what="the resolved link on the callback")
    assert links[0]["complaint_id"] == linked[0]["complaint_id"] and links[0]["resolved_at"]
    assert all(report["equal"] for report in call(config, "admin", "rebuild_projections"))
    assert call(config, "auditor", "verify_log", every_signature=True)["ok"]


def test_erasure_leaves_notes_unreadable_and_cancels_what_is_pending(crm):
    config, _complaints, _callbacks = crm
    customer_id = known(config, register(config))
    called = schedule(config, customer_id)["callback_id"]
    pending = schedule(config, customer_id, kind="periodic")["callback_id"]
    attempt(config, called, "reached", satisfaction=5, script_followed=True, notes=NOTE)
    history = call(config, "supervisor", "get", called)["history"]
    assert [entry.get("text") for entry in history if entry["type"] == "CallbackAttempted"] == [NOTE]

    call(config, "admin", "erase", customer_id, "subject_request", service="customers")

    cancelled = wait_for(lambda: (view := call(config, "supervisor", "get", pending))["status"] == "cancelled"
                         and view, what="the pending callback cancelled")
    assert cancelled["close_reason"] == "customer_erased"
    view = call(config, "supervisor", "get", called)
    assert [entry.get("text") for entry in view["history"] if entry["type"] == "CallbackAttempted"] == [None]
    assert NOTE not in str(callbacks_events(config))
    assert remote_error(config, "agent", "schedule", customer_id, "periodic").exc_type == "Conflict"


# -- consent, validation, roles ----------------------------------------------------------------

def test_consent_withdrawal_cancels_pending_callbacks_and_refuses_new_ones(quick):
    config, _callbacks = quick
    customer_id = known(config, register(config))
    other = known(config, register(config, phone="13900000000", email="li@example.com"))
    ids = [schedule(config, customer_id)["callback_id"], schedule(config, customer_id, kind="lost_customer")["callback_id"]]
    kept = schedule(config, other)["callback_id"]
    wait_for(lambda: len(queue(config)) == 3, what="three callbacks in the queue")

    call(config, "agent", "withdraw_consent", customer_id, "callbacks", service="customers")

    wait_for(lambda: [item["callback_id"] for item in queue(config)] == [kept], what="only the other one left")
    for callback_id in ids:
        view = call(config, "supervisor", "get", callback_id)
        assert (view["status"], view["close_reason"]) == ("cancelled", "consent_withdrawn")
    error = remote_error(config, "agent", "schedule", customer_id, "periodic")
    assert error.exc_type == "Conflict" and "consent" in error.value
    assert remote_error(config, "agent", "record_attempt", ids[0], "busy").exc_type == "Conflict"


def test_bad_inputs_are_refused_naming_the_field(quick):
    config, _callbacks = quick
    customer_id = known(config, register(config))
    callback_id = schedule(config, customer_id)["callback_id"]
    cases = [
        ("record_attempt", (callback_id, "no_answer"), {"satisfaction": 4}, "satisfaction"),
        ("record_attempt", (callback_id, "busy"), {"issue": "x"}, "issue"),
        ("record_attempt", (callback_id, "reached"), {"satisfaction": 4}, "script_followed"),
        ("record_attempt", (callback_id, "reached"), {"satisfaction": 6, "script_followed": True}, "satisfaction"),
        ("record_attempt", (callback_id, "hung_up"), {}, "outcome"),
        ("schedule", (customer_id, "sales_pitch"), {}, "kind"),
        ("schedule", (customer_id, "periodic"), {"due_at": "tomorrow"}, "due_at"),
        ("sample", (), {"customer_ids": [customer_id], "rate": 0}, "rate"),
        ("sample", (), {"customer_ids": [customer_id, customer_id]}, "customer_ids"),
        ("kpis", ("2026-03-02", "2026-03-01"), {}, "until"),
    ]
    for method, args, kwargs, field in cases:
        role = "supervisor" if method == "kpis" else "agent"
        error = remote_error(config, role, method, *args, **kwargs)
        assert error.exc_type == "ValidationError" and field in error.value, (method, kwargs, error.value)
    first = schedule(config, customer_id, command_id="agent-wang-42")
    assert schedule(config, customer_id, command_id="agent-wang-42") == first  # a retry: the first answer
    assert remote_error(config, "agent", "schedule", customer_id, "periodic",
                        command_id="agent-wang-42").exc_type == "Conflict"  # the id reused for another payload
    attempt(config, callback_id, "wrong_number")
    error = remote_error(config, "agent", "record_attempt", callback_id, "reached", script_followed=True)
    assert error.exc_type == "Conflict" and "failed" in error.value


def test_roles_and_forged_tokens_are_refused(quick):
    config, _callbacks = quick
    customer_id = known(config, register(config))
    callback_id = schedule(config, customer_id, assignee="agent-li")["callback_id"]
    attempt(config, callback_id, "reached", actor="agent-li", satisfaction=5, script_followed=True, notes=NOTE)
    assert remote_error(config, "agent", "kpis", "2026-01-01", "2026-02-01").exc_type == "Forbidden"
    assert remote_error(config, "auditor", "record_attempt", callback_id, "busy").exc_type == "Forbidden"
    assert remote_error(config, "agent", "set_periodic_rule", "partner", 30).exc_type == "Forbidden"
    assert remote_error(config, "agent", "issue_text", callback_id, str(uuid.uuid4())).exc_type == "Forbidden"
    error = remote_error(config, "agent", "list_due", assignee="agent-li")
    assert error.exc_type == "Forbidden"
    auditor_view = call(config, "auditor", "get", callback_id)
    assert auditor_view["texts_shown"] is False and all("text" not in entry for entry in auditor_view["history"])

    elsewhere = issue_token(ISSUER_KEY, "admin", "mallory", ["customers"])
    forged = signed(Ed25519PrivateKey.generate(), claims("callbacks"))
    for raw in (elsewhere, forged, "not-a-token"):
        with rpc_as(config, None, raw_token=raw) as proxy, pytest.raises(RemoteError) as refused:
            proxy.callbacks.list_due()
        assert refused.value.exc_type == "Unauthenticated"


# -- KPIs, sampling, the queue and the sweep -------------------------------------------------

def test_kpis_match_a_hand_computed_case(quick):
    config, _callbacks = quick
    customer_id = known(config, register(config))
    one, two, three, four = (schedule(config, customer_id, kind=kind)["callback_id"]
                             for kind in ("satisfaction", "satisfaction", "lost_deal", "lost_deal"))
    attempt(config, one, "reached", actor="a1", satisfaction=5, script_followed=True)
    attempt(config, two, "no_answer", actor="a1")
    attempt(config, two, "reached", actor="a1", satisfaction=3, script_followed=False)
    attempt(config, three, "busy", actor="a2")
    attempt(config, three, "wrong_number", actor="a2")
    attempt(config, four, "reached", actor="a2", satisfaction=4, script_followed=True)
    today = datetime.now(timezone(timedelta(hours=8))).date()
    since, until = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()

    figures = wait_for(lambda: (found := call(config, "supervisor", "kpis", since, until))["attempts"] == 6 and found,
                       what="six attempts counted")
    # 4 callbacks attempted, 3 reached: 75 %; 3 reached calls, 2 by the script: 66.7 %; (5 + 3 + 4) / 3 = 4.0
    assert (figures["callbacks_attempted"], figures["callbacks_reached"], figures["success_rate_pct"]) == (4, 3, 75.0)
    assert (figures["compliance_pct"], figures["average_satisfaction"]) == (66.7, 4.0)
    a1, a2 = figures["per_agent"]["a1"], figures["per_agent"]["a2"]
    assert (a1["success_rate_pct"], a1["compliance_pct"], a1["meets_compliance_target"]) == (100.0, 50.0, False)
    assert (a2["success_rate_pct"], a2["compliance_pct"], a2["meets_success_target"]) == (50.0, 100.0, False)
    assert figures["per_kind"]["lost_deal"]["success_rate_pct"] == 50.0
    assert list(figures["per_day"]) == [today.isoformat()]
    short = {(entry["scope"], entry["key"], entry["kpi"]) for entry in figures["shortfalls"]}
    assert {("agent", "a1", "compliance_pct"), ("agent", "a2", "success_rate_pct"),
            ("overall", None, "success_rate_pct")} <= short
    assert call(config, "supervisor", "kpis", "2020-01-01", "2020-01-02")["success_rate_pct"] is None


def test_sampling_the_queue_and_the_sweep(ticking):
    config, _callbacks = ticking
    ids = [known(config, register(config, phone=f"1390000{n:04d}", email=f"c{n}@example.com", tier="general"))
           for n in range(7)]
    picked = call(config, "supervisor", "sample", customer_ids=ids, rate=0.15)
    assert len(picked["picked"]) == 2 and picked["share_pct"] >= 15.0  # ceil(1.05) = 2
    again = call(config, "supervisor", "sample", customer_ids=list(reversed(ids)), rate=0.15,
                 command_id=str(uuid.uuid4()))  # as the CLI sends: a fresh id, the same pick, nothing new
    assert [entry["callback_id"] for entry in again["picked"]] == [entry["callback_id"] for entry in picked["picked"]]
    sampled = call(config, "supervisor", "get", picked["picked"][0]["callback_id"])
    assert sampled["origin"] == "sample" and "rank 1 of 7" in sampled["sample"]["reason"]
    assert len(queue(config)) == 2

    # a due time at night moves to the next opening and says so; the queue is ordered by due time, then priority
    night = datetime.now(timezone(timedelta(hours=8))).replace(hour=23, minute=0, second=0, microsecond=0)
    moved = schedule(config, ids[0], due_at=night.isoformat(), priority="low", assignee="agent-li")
    assert "moved to the next opening" in moved["moved"] and moved["requested_at"] == domain_iso(night)
    assert datetime.fromisoformat(moved["due_at"]).astimezone(night.tzinfo).hour == 9
    urgent = schedule(config, ids[1], due_at=night.isoformat(), priority="urgent")
    mine = queue(config, role="agent", actor="agent-li")
    pair = [item["callback_id"] for item in mine if item["callback_id"] in (moved["callback_id"],
                                                                            urgent["callback_id"])]
    assert pair == [urgent["callback_id"], moved["callback_id"]]
    assert moved["callback_id"] not in [item["callback_id"] for item in queue(config, role="agent", actor="agent-wu")
                                        if item["assignee"] is not None]

    # a periodic rule: the timer schedules one callback per period, and the admin's sweep finds it made
    call(config, "supervisor", "set_periodic_rule", "partner", 30)
    assert call(config, "agent", "periodic_rules")["partner"]["every_days"] == 30
    partner = known(config, register(config, phone="13700000001", email="p@example.com"))
    wait_for(lambda: [item for item in queue(config, kind="periodic") if item["customer_id"] == partner],
             what="the timer's periodic callback")
    # overdue by more than two hours (the admin's sweep at a later time): back to the pool
    later = (datetime.fromisoformat(moved["due_at"]) + timedelta(hours=3)).isoformat()
    swept = call(config, "admin", "run_sweep", now=later)
    assert swept["returned_to_pool"] == 1 and swept["periodic_ensured"] == 1
    assert call(config, "admin", "run_sweep", now=later)["returned_to_pool"] == 0
    assert call(config, "supervisor", "get", moved["callback_id"])["assignee"] is None
    periodic = wait_for(lambda: [item for item in queue(config, kind="periodic") if item["customer_id"] == partner],
                        what="the periodic callback")
    assert len(periodic) == 1 and periodic[0]["origin"] == "periodic"
