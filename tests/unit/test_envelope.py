"""The envelope, the exact text its hash covers, and the helpers the hot paths use instead of the stdlib's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import shared.eventstore.envelope as envelope_module
from shared.canonical import GENESIS_HASH, canonical_json, sha256_hex
from shared.errors import Conflict
from shared.eventstore.appending import Command, CommandRecord
from shared.eventstore.envelope import (CommandContext, Envelope, NewEvent, actor_json, content_hash, hash_input,
                                        new_id, parse_json, utc_now_iso)
from shared.eventstore.upcasting import Upcasters
from shared.signing import ServiceKeys
from tests.support import signer

AWKWARD_TEXTS = ['plain', 'quote " and backslash \\', "tab\tnewline\nreturn\r", "\x00\x1f\x7f control",
                 "中文 客户回访", "emoji 🎉", "line\u2028separator", "", "/slash/"]


def envelope_fields(**overrides) -> dict:
    fields = {"event_id": "6f1c8a0e-3b7d-4c55-9a51-1f2e3d4c5b6a", "type": "CustomerRegistered",
              "schema_version": 1, "service": "customers", "stream_id": "customer-1", "stream_version": 3,
              "position": 42, "occurred_at": "2026-01-01T00:00:00.000000Z",
              "recorded_at": "2026-01-01T00:00:00.000001Z", "actor": {"id": "agent-1", "role": "agent"},
              "correlation_id": "request-1", "causation_id": None,
              "data": {"name": "张伟", "nested": {"b": [1, 2.5, None, True], "a": "x"}},
              "prev_hash": GENESIS_HASH}
    return {**fields, **overrides}


def hash_input_of(fields: dict) -> str:
    return hash_input(actor_json=canonical_json(fields["actor"]), data_json=canonical_json(fields["data"]),
                      **{k: v for k, v in fields.items() if k not in ("actor", "data")})


@pytest.mark.parametrize("awkward", AWKWARD_TEXTS)
def test_hash_input_is_the_canonical_json_of_the_envelope_without_hash(awkward):
    fields = envelope_fields(stream_id=awkward, type=awkward, correlation_id=awkward, causation_id=awkward,
                             occurred_at=awkward, data={"text": awkward, awkward: 1})
    assert hash_input_of(fields) == canonical_json(fields)


def test_hash_input_writes_null_for_a_missing_causation():
    fields = envelope_fields(causation_id=None)
    assert '"causation_id":null' in hash_input_of(fields) and hash_input_of(fields) == canonical_json(fields)


def test_hash_input_takes_its_arguments_in_canonical_order():
    """``verify`` passes rows positionally, selected in this order."""
    fields = envelope_fields(causation_id="call-1")
    fields["actor"], fields["data"] = canonical_json(fields["actor"]), canonical_json(fields["data"])
    ordered = [fields[name] for name in sorted(fields)]  # actor, causation_id, ... type
    assert hash_input(*ordered) == hash_input_of(envelope_fields(causation_id="call-1"))


def test_sealed_events_chain_and_hash_what_design_md_says():
    context = CommandContext("agent-1", "agent", correlation_id="request-1", causation_id="call-1")
    command = Command(signer("customers"), "customer-9", [
        NewEvent("CustomerRegistered", {"name": "张伟"}),
        NewEvent("ConsentGiven", {"purpose": "callbacks"}, 2, "2026-01-01T00:00:00.000000Z")], 4, context)
    sealed = command.seal(4, (41, "ab" * 32))

    first, second = sealed.appended.envelopes
    assert (sealed.appended.stream_id, sealed.appended.version) == ("customer-9", 6)
    assert [(e.position, e.stream_version) for e in (first, second)] == [(42, 5), (43, 6)]
    assert (first.prev_hash, second.prev_hash) == ("ab" * 32, first.hash)
    assert second.occurred_at == "2026-01-01T00:00:00.000000Z" and first.occurred_at == first.recorded_at
    for envelope, row in zip((first, second), sealed.rows):
        without_hash = {k: v for k, v in envelope.to_dict().items() if k not in ("hash", "signature")}
        assert envelope.hash == sha256_hex(canonical_json(without_hash)) == content_hash(envelope)
        assert ServiceKeys.of(signer("customers")).signed_by("customers", envelope.hash, envelope.signature)
        assert row == tuple({**envelope.to_dict(), "actor": canonical_json(envelope.actor),
                             "data": canonical_json(envelope.data)}.values())
    assert sealed.head == (43, second.hash) and sealed.appended.result is None


def test_a_sealed_command_with_an_id_carries_its_result_and_fingerprint():
    context = CommandContext("agent-1", "agent")
    record = CommandRecord("command-1", "f" * 64,
                           lambda appended: {"customer_id": "1", "position": appended.envelopes[0].position})
    custom = Command(signer("customers"), "customer-1", [NewEvent("CustomerRegistered", {})], 0, context, record)
    sealed = custom.seal(0, (7, GENESIS_HASH))
    assert sealed.appended.result == {"customer_id": "1", "position": 8}
    assert sealed.result_row(record) == ("command-1", '{"customer_id":"1","position":8}', sealed.recorded_at,
                                         "f" * 64)


def test_a_command_checks_the_version_it_was_decided_on():
    command = Command(signer("customers"), "customer-1", [NewEvent("X", {})], 2, CommandContext("a", "agent"))
    command.check_version(2)
    for current in (1, 3):
        with pytest.raises(Conflict, match=f"customer-1 is at version {current}, not 2"):
            command.check_version(current)
    Command(signer("customers"), "customer-1", [NewEvent("X", {})], None,
            CommandContext("a", "agent")).check_version(7)


def test_the_envelope_is_an_immutable_record():
    envelope = Envelope(**envelope_fields(hash="f" * 64, signature="s"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        envelope.position = 1  # type: ignore[misc]
    assert envelope.to_dict() == envelope_fields(hash="f" * 64, signature="s")
    assert list(envelope.to_dict()) == [field.name for field in dataclasses.fields(Envelope)]


def test_utc_now_iso_is_sortable_utc_with_microseconds():
    before = datetime.now(timezone.utc)
    now = utc_now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", now)
    parsed = datetime.strptime(now, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - timedelta(seconds=1) <= parsed <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_utc_now_iso_formats_each_instant_exactly(monkeypatch):
    instants = iter([1_700_000_000_123_456_789, 1_700_000_000_999_999_999, 1_700_000_001_000_000_000,
                     951_782_400_000_001_000])  # the last one is 2000-02-29
    monkeypatch.setattr(envelope_module.time, "time_ns", lambda: next(instants))
    assert [utc_now_iso() for _ in range(4)] == ["2023-11-14T22:13:20.123456Z", "2023-11-14T22:13:20.999999Z",
                                                 "2023-11-14T22:13:21.000000Z", "2000-02-29T00:00:00.000001Z"]


def test_new_id_is_a_random_uuid4_in_canonical_text():
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


@pytest.mark.parametrize("text", ['{"a":[1,2.5,null,true,false],"b":"中文"}', "[]", "3", '"x"', "null",
                                  " {} ", '{"a": 1}'])
def test_parse_json_agrees_with_json_loads(text):
    assert parse_json(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", "{} x", '{"a":1}}', "nope"])
def test_parse_json_refuses_what_json_loads_refuses(text):
    with pytest.raises(json.JSONDecodeError):
        parse_json(text)


def test_actor_json_is_the_canonical_json_of_the_context_actor():
    context = CommandContext("agent \"7\" 张", "supervisor")
    assert actor_json(context.actor_id, context.role) == canonical_json(context.actor)


def test_command_context_gives_each_command_its_own_correlation_id():
    first, second = CommandContext("agent-1", "agent"), CommandContext("agent-1", "agent")
    assert first.correlation_id != second.correlation_id and first.causation_id is None
    assert first.actor == {"id": "agent-1", "role": "agent"}


def test_upcasters_lift_step_by_step_and_leave_other_types_alone():
    upcasters = Upcasters()
    assert not upcasters
    upcasters.register("CustomerRegistered", 1, lambda data: {"full_name": data["name"]})
    upcasters.register("CustomerRegistered", 2, lambda data: {**data, "tier": "general"})
    assert upcasters
    assert upcasters.upcast("CustomerRegistered", 1, {"name": "张伟"}) == (3, {"full_name": "张伟",
                                                                            "tier": "general"})
    assert upcasters.upcast("CustomerRegistered", 3, {"x": 1}) == (3, {"x": 1})
    assert upcasters.upcast("ConsentGiven", 1, {"purpose": "callbacks"}) == (1, {"purpose": "callbacks"})


def test_sha256_of_the_hash_input_is_what_the_store_records():
    fields = envelope_fields()
    assert sha256_hex(hash_input_of(fields)) == hashlib.sha256(canonical_json(fields).encode()).hexdigest()
