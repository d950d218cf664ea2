"""The callbacks' payloads refuse bad input naming the field."""

from __future__ import annotations

import pytest

from contracts import callbacks as contract
from shared.errors import ValidationError
from shared.validation import load, load_call


def refused(schema, payload) -> dict:
    with pytest.raises(ValidationError) as error:
        load(schema, payload)
    return error.value.fields


@pytest.mark.parametrize("outcome", ["no_answer", "busy", "voicemail", "wrong_number", "refused"])
def test_only_a_reached_call_carries_a_score_a_script_check_or_an_issue(outcome):
    fields = refused(contract.RecordAttempt(), {"callback_id": "cb", "outcome": outcome, "satisfaction": 3,
                                                "script_followed": True, "issue": "x"})
    assert set(fields) == {"satisfaction", "script_followed", "issue"}
    assert "only a reached call has a satisfaction score" in fields["satisfaction"][0]
    assert load(contract.RecordAttempt(), {"callback_id": "cb", "outcome": outcome, "notes": "rang twice"})


def test_a_reached_call_says_whether_the_script_was_followed_and_scores_1_to_5():
    assert "script_followed" in refused(contract.RecordAttempt(), {"callback_id": "cb", "outcome": "reached"})
    assert "satisfaction" in refused(contract.RecordAttempt(), {"callback_id": "cb", "outcome": "reached",
                                                                "script_followed": True, "satisfaction": 0})
    assert "script_followed" in refused(contract.RecordAttempt(), {"callback_id": "cb", "outcome": "reached",
                                                                   "script_followed": "yes"})


def test_schedule_sample_and_kpis_refuse_what_they_cannot_use():
    assert set(refused(contract.Schedule(), {"customer_id": "c 1", "kind": "cold_call", "due_at": "2025-11-04T10:00",
                                             "priority": "asap"})) == {"customer_id", "kind", "due_at", "priority"}
    assert set(refused(contract.Sample(), {"customer_ids": [], "rate": 1.5})) == {"customer_ids", "rate"}
    assert "customer_ids" in refused(contract.Sample(), {"customer_ids": ["a", "a"]})
    assert "until" in refused(contract.Kpis(), {"since": "2025-11-05", "until": "2025-11-04"})
    assert set(refused(contract.SetPeriodicRule(), {"tier": "vip", "every_days": -1})) == {"tier", "every_days"}
    assert load_call(contract.Sample(), (), {"customer_ids": ["a"]})["rate"] == 0.15
    assert load_call(contract.Schedule(), ("c1", "periodic"), {})["due_at"] is None


def test_the_linked_complaint_id_derives_from_the_event_alone():
    assert contract.linked_complaint_id("e-1") == contract.linked_complaint_id("e-1")
    assert contract.linked_complaint_id("e-1") != contract.linked_complaint_id("e-2")


def test_every_rpc_method_declares_its_roles_and_has_a_schema():
    from services.callbacks.service import CallbacksService

    methods = {name for name in dir(CallbacksService)
               if hasattr(getattr(CallbacksService, name), "nameko_entrypoints") and name != "on_upstream_event"}
    own = methods - {"events_since", "log_head", "health", "verify_log", "rebuild_projections", "dead_letters",
                     "retry_dead_letter", "sweep_tick"}
    assert own == set(contract.RPC_SCHEMAS)
    for name in methods - {"sweep_tick"}:
        assert getattr(getattr(CallbacksService, name), "allowed_roles", None), f"{name} declares no roles"
    assert getattr(CallbacksService.kpis, "allowed_roles") == ("supervisor", "admin", "auditor")
    assert getattr(CallbacksService.record_attempt, "allowed_roles") == ("agent", "supervisor", "admin")
