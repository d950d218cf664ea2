"""Checksums of projections are deterministic and independent of how rows were written."""

import hashlib

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, create_engine, insert
from sqlalchemy.pool import StaticPool

from shared.canonical import canonical_json
from shared.eventstore.envelope import Envelope
from shared.checksums import checksum, digest_tables
from shared.consumers import as_envelope

ROWS = [
    {"key": "b", "n": 2, "flag": True, "note": None},
    {"key": "B", "n": 1, "flag": False, "note": "大写"},
    {"key": "é", "n": 3, "flag": True, "note": "accent"},
    {"key": "中", "n": 4, "flag": False, "note": ""},
    {"key": "a b", "n": 5, "flag": True, "note": "line\nbreak"},
]


def _metadata() -> tuple[MetaData, Table, Table]:
    metadata = MetaData()
    # defined out of name order on purpose: the checksum orders tables by name
    zeta = Table("zeta", metadata, Column("id", Integer, primary_key=True), Column("label", String(20)))
    alpha = Table("alpha", metadata, Column("key", String(20), primary_key=True),
                  Column("n", Integer, nullable=False), Column("flag", Boolean, nullable=False),
                  Column("note", String(40)))
    return metadata, alpha, zeta


def _checksum_after_inserting(rows, labels) -> str:
    metadata, alpha, zeta = _metadata()
    engine = create_engine("sqlite://", poolclass=StaticPool)
    metadata.create_all(engine)
    with engine.begin() as connection:
        for row in rows:
            connection.execute(insert(alpha), row)
        for ident, label in labels:
            connection.execute(insert(zeta), {"id": ident, "label": label})
        return checksum(connection, metadata)


def test_digest_is_sha256_of_table_headers_and_canonical_rows():
    rows = [{"b": 1, "a": "x"}, {"b": 2, "a": None}]
    expected = hashlib.sha256(("table t\n" + "".join(canonical_json(row) + "\n" for row in rows)).encode())
    assert digest_tables([("t", rows)]) == expected.hexdigest()


@pytest.mark.parametrize("changed", [
    [("t", [{"k": 1, "v": 1}])],                      # True and 1 differ
    [("t", [{"k": 1, "v": None}])],
    [("t", [{"k": 1, "v": "true"}])],
    [("t", []), ("u", [{"k": 1, "v": True}])],        # same row, other table
    [("t", [{"k": 1, "v": True}]), ("u", [])],        # an empty table still counts
])
def test_digest_tells_apart_what_a_projection_could_confuse(changed):
    assert digest_tables([("t", [{"k": 1, "v": True}])]) != digest_tables(changed)


def test_checksum_ignores_insertion_order_and_orders_keys_by_code_point():
    labels = [(2, "two"), (10, "ten"), (1, "one")]
    forward = _checksum_after_inserting(ROWS, labels)
    backward = _checksum_after_inserting(list(reversed(ROWS)), list(reversed(labels)))
    by_code_point = digest_tables([
        ("alpha", sorted(ROWS, key=lambda row: row["key"])),
        ("zeta", [{"id": ident, "label": label} for ident, label in sorted(labels)]),
    ])
    assert forward == backward == by_code_point


def test_checksum_changes_with_any_value():
    labels = [(1, "one")]
    changed = [dict(row) for row in ROWS]
    changed[2]["flag"] = False
    assert _checksum_after_inserting(ROWS, labels) != _checksum_after_inserting(changed, labels)
    assert _checksum_after_inserting(ROWS, labels) != _checksum_after_inserting(ROWS[:-1], labels)


def test_envelope_from_an_rpc_dict_ignores_extra_keys():
    envelope = Envelope(event_id="e1", type="CustomerRegistered", schema_version=1, service="customers",
                        stream_id="c1", stream_version=1, position=1, occurred_at="2024-01-01T00:00:00Z",
                        recorded_at="2024-01-01T00:00:00Z", actor={"id": "a", "role": "agent"},
                        correlation_id="r1", causation_id=None, data={"x": 1}, prev_hash="0" * 64,
                        hash="1" * 64)
    assert as_envelope(envelope) is envelope
    assert as_envelope({**envelope.to_dict(), "routing_key": "CustomerRegistered"}) == envelope
