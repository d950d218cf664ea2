"""Per-customer data keys on real databases: seal, open, shred, and what remains."""

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from shared.crypto import PREFIX, SUBJECT_ONLY_PREFIX, KeyRing, WrongMasterKey
from shared.errors import Conflict
from shared.eventstore.engine import create_store_engine
from shared.eventstore.tables import data_keys

MASTER = b"m" * 32
STREAM = "customer-c1"


@pytest.fixture
def keys(database_url):
    engine = create_store_engine(database_url)
    yield KeyRing(engine, MASTER)
    engine.dispose()


def test_values_round_trip_and_ciphertext_differs_each_time(keys):
    key = keys.sealing_key("c1")
    first, second = key.seal("13812345678", STREAM, "phone"), key.seal("13812345678", STREAM, "phone")
    assert first.startswith(PREFIX) and first != second
    assert keys.opening_key("c1").open(first, STREAM, "phone") == "13812345678"


def test_a_value_opens_only_in_the_stream_and_field_it_was_sealed_for(keys):
    sealed = keys.sealing_key("c1").seal("张伟 asked for a callback", STREAM, "reason")
    key = keys.opening_key("c1")
    assert key.open(sealed, STREAM, "reason") == "张伟 asked for a callback"
    assert key.open(sealed, STREAM, "name") is None
    assert key.open(sealed, "customer-c2", "reason") is None


def test_a_fresh_keyring_reads_keys_back_through_the_master_key(keys):
    sealed = keys.create("c1").seal_fields({"name": "张伟", "tier": "general"}, ["name"], STREAM)
    assert sealed["tier"] == "general" and sealed["name"] != "张伟"
    reopened = KeyRing(keys.engine, MASTER).opening_key("c1")
    assert reopened.open_fields(sealed, ["name"], STREAM)["name"] == "张伟"


def test_values_sealed_to_the_subject_only_still_open(keys):
    keys.create("c1")
    data_key = keys_unwrapped(keys, "c1")
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(data_key).encrypt(nonce, "张伟".encode(), b"c1")  # bound to the subject only
    legacy = SUBJECT_ONLY_PREFIX + base64.b64encode(sealed).decode()
    assert keys.opening_key("c1").open(legacy, STREAM, "name") == "张伟"


def test_another_subjects_key_cannot_open_the_value(keys):
    sealed = keys.sealing_key("c1").seal("secret", STREAM, "reason")
    keys.sealing_key("c2")
    assert keys.opening_key("c2").open(sealed, STREAM, "reason") is None


def test_destroy_makes_every_copy_unreadable_in_every_keyring_even_one_that_read_it_before(keys):
    sealed = keys.sealing_key("c1").seal("13812345678", STREAM, "phone")
    other_replica = KeyRing(keys.engine, MASTER)
    assert other_replica.opening_key("c1").open(sealed, STREAM, "phone") == "13812345678"
    assert keys.destroy("c1") is True
    assert keys.destroy("c1") is False
    assert keys.opening_key("c1").open(sealed, STREAM, "phone") is None
    assert other_replica.opening_key("c1").open(sealed, STREAM, "phone") is None
    with pytest.raises(Conflict, match="destroyed"):
        other_replica.sealing_key("c1")


def test_a_subject_erased_before_it_had_a_key_never_gets_one(keys):
    assert keys.destroy("c9") is False
    assert keys.is_destroyed("c9")
    with pytest.raises(Conflict, match="destroyed"):
        keys.sealing_key("c9")
    with pytest.raises(Conflict, match="destroyed"):
        keys.create("c9").seal("new PII after erasure", "customer-c9", "name")


def test_a_wrong_master_key_cannot_unwrap(keys):
    sealed = keys.sealing_key("c1").seal("x", STREAM, "name")
    with pytest.raises(WrongMasterKey, match="CRM_MASTER_KEY"):
        KeyRing(keys.engine, b"w" * 32).opening_key("c1").open(sealed, STREAM, "name")


def keys_unwrapped(keys: KeyRing, subject_id: str) -> bytes:
    """The subject's data key in clear, as a service that sealed with ``enc:v1:`` had it."""
    with keys.engine.connect() as connection:
        wrapped = bytes(connection.execute(select(data_keys.c.wrapped_key)
                                           .where(data_keys.c.subject_id == subject_id)).scalar_one())
    return AESGCM(MASTER).decrypt(wrapped[:12], wrapped[12:], subject_id.encode())
