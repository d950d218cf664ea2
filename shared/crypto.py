"""Per-customer data keys for PII in an append-only log (crypto-shredding).

Each service keeps its own keys in its ``data_keys`` table, wrapped with the
master key (AES-GCM). A PII value in an event is stored as
``enc:v1:<base64(nonce + ciphertext)>`` under the subject's key. Destroying
the key makes every copy of that value unreadable while the log's hashes,
which cover the ciphertext, still verify.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict
from typing import Any, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.errors import Conflict
from shared.eventstore.envelope import utc_now_iso
from shared.eventstore.tables import data_keys

PREFIX = "enc:v1:"
NONCE_BYTES = 12
CACHED_KEYS = 10_000  # unwrapped keys kept in memory, least recently used dropped first


class WrongMasterKey(RuntimeError):
    """The master key does not unwrap the stored data keys: the service runs with another one."""


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)


class KeyRing:
    """Creates, caches, uses and destroys the data keys of one service database."""

    def __init__(self, engine: Engine, master_key: bytes):
        self.engine = engine
        self._master = master_key
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._destroyed: set[str] = set()
        self._lock = threading.Lock()

    def create(self, subject_id: str) -> None:
        """Make the key of a subject known to be new (saves the look-up ``encrypt`` would do)."""
        key = self._create(subject_id)
        if key is not None:
            self._remember(subject_id, key)

    def encrypt(self, subject_id: str, value: str | None) -> str | None:
        if value is None:
            return None
        key = self._key(subject_id, create=True)
        if key is None:
            raise Conflict(f"the data key of {subject_id} was destroyed (erased); no new PII can be stored")
        sealed = _seal(key, value.encode("utf-8"), subject_id.encode())
        return PREFIX + base64.b64encode(sealed).decode()

    def decrypt(self, subject_id: str, value: Any) -> Any:
        """Plain text, or ``None`` when the subject's key was destroyed."""
        if not isinstance(value, str) or not value.startswith(PREFIX):
            return value
        key = self._key(subject_id, create=False)
        if key is None:
            return None
        try:
            return _open(key, base64.b64decode(value[len(PREFIX):]), subject_id.encode()).decode("utf-8")
        except (InvalidTag, ValueError):
            return None

    def encrypt_fields(self, subject_id: str, data: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
        sealed = dict(data)
        for name in names:
            if sealed.get(name) is not None:
                sealed[name] = self.encrypt(subject_id, str(sealed[name]))
        return sealed

    def decrypt_fields(self, subject_id: str, data: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
        opened = dict(data)
        for name in names:
            if name in opened:
                opened[name] = self.decrypt(subject_id, opened[name])
        return opened

    def destroy(self, subject_id: str, connection: Connection | None = None) -> bool:
        """Shred the subject's key; True if there was a live key to destroy.

        Pass ``connection`` to shred inside the caller's transaction (a
        projection applying ``CustomerErased``): SQLite allows one writer.
        """
        with self._lock:
            self._cache.pop(subject_id, None)
            self._destroyed.add(subject_id)  # never re-cached, even before this transaction commits
        statement = (update(data_keys)
                     .where(data_keys.c.subject_id == subject_id, data_keys.c.wrapped_key.is_not(None))
                     .values(wrapped_key=None, destroyed_at=utc_now_iso()))
        if connection is not None:
            return connection.execute(statement).rowcount > 0
        with self.engine.begin() as own:
            return own.execute(statement).rowcount > 0

    def is_destroyed(self, subject_id: str) -> bool:
        """Whether the subject had a key here and it was destroyed."""
        with self.engine.connect() as connection:
            row = connection.execute(select(data_keys.c.destroyed_at)
                                     .where(data_keys.c.subject_id == subject_id)).first()
        return row is not None and row[0] is not None

    def _key(self, subject_id: str, create: bool) -> bytes | None:
        with self._lock:
            if subject_id in self._destroyed:
                return None
            cached = self._cache.get(subject_id)
            if cached is not None:
                self._cache.move_to_end(subject_id)
                return cached
        key = self._load(subject_id)
        if key is None and create:
            key = self._create(subject_id)
        if key is not None:
            self._remember(subject_id, key)
        return key

    def _remember(self, subject_id: str, key: bytes) -> None:
        with self._lock:
            self._cache[subject_id] = key
            if len(self._cache) > CACHED_KEYS:
                self._cache.popitem(last=False)

    def _load(self, subject_id: str) -> bytes | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(data_keys.c.wrapped_key)
                                     .where(data_keys.c.subject_id == subject_id)).first()
        if row is None or row[0] is None:
            return None
        try:
            return _open(self._master, bytes(row[0]), subject_id.encode())
        except InvalidTag:
            raise WrongMasterKey(f"the master key does not unwrap the data key of {subject_id}: run with the "
                                 "CRM_MASTER_KEY this database's keys were created with") from None

    def _create(self, subject_id: str) -> bytes | None:
        key = AESGCM.generate_key(bit_length=256)
        wrapped = _seal(self._master, key, subject_id.encode())
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(data_keys), {"subject_id": subject_id, "wrapped_key": wrapped,
                                                       "created_at": utc_now_iso()})
        except IntegrityError:  # created concurrently, or destroyed: the stored row wins
            return self._load(subject_id)
        return key
