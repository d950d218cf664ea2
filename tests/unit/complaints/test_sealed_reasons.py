"""Reasons people give for an escalation or a reopen are sealed like the other texts, and shown like them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.complaints import domain, views
from services.complaints.aggregate import seal
from shared.crypto import PREFIX, KeyRing
from shared.eventstore.envelope import CommandContext
from shared.eventstore.store import EventStore
from tests.support import signer

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
RULES = domain.Rules()
FILE = {"customer_id": "cust-1", "channel": "phone", "category": "billing", "urgency": "high",
        "summary": "双重扣费", "description": "扣了两次", "related_complaint_id": None, "command_id": None}
ESCALATION = "张伟 threatens to go to the press, call 13812345678"
REOPENING = "张伟 says the refund never arrived"


@pytest.fixture
def history(tmp_path):
    store = EventStore.open(f"sqlite:///{tmp_path / 'complaints.db'}", signer("complaints"))
    keys = KeyRing(store.engine, b"m" * 32)
    steps = [lambda c: domain.decide_file("k1", FILE, NOW, RULES),
             lambda c: domain.decide_escalate(c, ESCALATION, NOW, RULES),
             lambda c: domain.decide_resolve(c, "退款", NOW),
             lambda c: domain.decide_reopen(c, REOPENING, NOW + timedelta(hours=1))]
    for decide in steps:
        complaint = domain.fold("k1", store.read_stream(domain.stream_of("k1")))
        store.append(domain.stream_of("k1"), seal(keys, complaint, decide(complaint)), complaint.version,
                     CommandContext("alice", "agent"))
    envelopes = store.read_stream(domain.stream_of("k1"))
    yield keys, domain.fold("k1", envelopes), envelopes
    store.close()


def test_the_reasons_are_ciphertext_in_the_log(history):
    _keys, _state, envelopes = history
    escalated, reopened = envelopes[1], envelopes[3]
    assert escalated.data["reason"].startswith(PREFIX) and reopened.data["reason"].startswith(PREFIX)
    assert escalated.data["trigger"] == "manual" and reopened.data["reopen_count"] == 1


def test_readers_see_the_reasons_and_the_read_names_them(history):
    keys, state, envelopes = history
    view = views.complaint_view(keys, state, envelopes, RULES, NOW, show_texts=True)
    assert [entry.get("text") for entry in view["history"][1:]] == [ESCALATION, "退款", REOPENING]
    assert views.texts_in(view) == ["summary", "description", "resolution", "messages", "reasons"]


def test_others_see_what_happened_without_the_reasons(history):
    keys, state, envelopes = history
    view = views.complaint_view(keys, state, envelopes, RULES, NOW, show_texts=False)
    notes = [entry["note"] for entry in view["history"]]
    assert notes[1] == "escalated to level 1" and notes[3] == "reopened (reopen 1)"
    assert not any("text" in entry for entry in view["history"]) and views.texts_in(view) == []
