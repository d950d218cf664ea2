"""Per-customer data keys on real databases: encrypt, shred, and what remains."""

import pytest

from shared.crypto import PREFIX, KeyRing, WrongMasterKey
from shared.errors import Conflict
from shared.eventstore.engine import create_store_engine

MASTER = b"m" * 32


@pytest.fixture
def keys(database_url):
    engine = create_store_engine(database_url)
    yield KeyRing(engine, MASTER)
    engine.dispose()


def test_values_round_trip_and_ciphertext_differs_each_time(keys):
    first, second = keys.encrypt("c1", "13812345678"), keys.encrypt("c1", "13812345678")
    assert first.startswith(PREFIX) and first != second
    assert keys.decrypt("c1", first) == "13812345678"


def test_a_fresh_keyring_reads_keys_back_through_the_master_key(keys):
    sealed = keys.encrypt_fields("c1", {"name": "张伟", "tier": "general"}, ["name"])
    assert sealed["tier"] == "general" and sealed["name"] != "张伟"
    reopened = KeyRing(keys.engine, MASTER)
    assert reopened.decrypt_fields("c1", sealed, ["name"])["name"] == "张伟"


def test_another_subjects_key_cannot_open_the_value(keys):
    sealed = keys.encrypt("c1", "secret")
    keys.encrypt("c2", "other")
    assert keys.decrypt("c2", sealed) is None


def test_destroy_makes_every_copy_unreadable_in_every_keyring(keys):
    sealed = keys.encrypt("c1", "13812345678")
    other_replica = KeyRing(keys.engine, MASTER)
    assert keys.destroy("c1") is True
    assert keys.destroy("c1") is False
    assert keys.decrypt("c1", sealed) is None
    assert other_replica.decrypt("c1", sealed) is None
    with pytest.raises(Conflict, match="destroyed"):
        keys.encrypt("c1", "new PII after erasure")


def test_a_wrong_master_key_cannot_unwrap(keys):
    keys.encrypt("c1", "x")
    with pytest.raises(WrongMasterKey, match="CRM_MASTER_KEY"):
        KeyRing(keys.engine, b"w" * 32).decrypt("c1", keys.encrypt("c1", "x"))
