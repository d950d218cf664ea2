"""Exported JSON Schemas accept what the marshmallow contracts accept, and refuse the rest."""

import json

import jsonschema
import pytest

from contracts.jsonschema import export

REGISTER_OK = {"name": "张伟", "phone": "13812345678", "tier": "partner", "consents": ["callbacks"]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("schemas")
    paths = export(out)
    return out, paths


def load(out, relative):
    schema = json.loads((out / relative).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_file_is_a_valid_schema(exported):
    out, paths = exported
    assert len(paths) > 15
    for path in paths:
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_register_schema_matches_the_contract(exported):
    validator = load(exported[0], "customers/rpc/register.json")
    assert validator.is_valid(REGISTER_OK)
    assert not validator.is_valid({**REGISTER_OK, "tier": "gold"})
    assert not validator.is_valid({**REGISTER_OK, "unknown": 1})
    assert not validator.is_valid({"phone": "13812345678"})  # name is required


def test_envelope_schema_requires_hash_chain_and_signature_fields(exported):
    validator = load(exported[0], "envelope.json")
    envelope = {"event_id": "3c526d12-71c0-4e4a-ac72-5435c9775ed7", "type": "CustomerRegistered",
                "schema_version": 1, "service": "customers", "stream_id": "customer-1", "stream_version": 1,
                "position": 1, "occurred_at": "t", "recorded_at": "t", "actor": {"id": "a", "role": "agent"},
                "correlation_id": "c", "causation_id": None, "data": {}, "prev_hash": "0" * 64, "hash": "a" * 64,
                "signature": "A" * 86 + "=="}
    assert validator.is_valid(envelope)
    assert not validator.is_valid({**envelope, "hash": "xyz"})
    assert not validator.is_valid({**envelope, "signature": "A" * 86})
    assert not validator.is_valid({key: value for key, value in envelope.items() if key != "signature"})


def test_a_bounded_list_is_bounded_by_its_number_of_items(exported):
    validator = load(exported[0], "customers/rpc/reveal_contacts.json")
    ids = [f"c{number}" for number in range(500)]
    assert validator.is_valid({"customer_ids": ids, "purpose": "care_messages"})
    assert not validator.is_valid({"customer_ids": [*ids, "one-more"], "purpose": "care_messages"})
    assert not validator.is_valid({"customer_ids": [], "purpose": "care_messages"})
