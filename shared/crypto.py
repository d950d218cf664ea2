"""Per-customer data keys for PII in an append-only log (crypto-shredding).

Each service keeps its own keys in its ``data_keys`` table, wrapped with the
master key (AES-GCM). A PII value in an event is stored as
``enc:v2:<base64(nonce + ciphertext)>`` under the subject's key, with
associated data binding it to the subject, the stream and the field it was
written for, so a ciphertext copied into another field or stream does not
open. Values sealed before that (``enc:v1:``) are bound to the subject only
and still open. Destroying the key makes every copy of every value
unreadable while the log's hashes, which cover the ciphertext, still verify.

Keys are not kept in memory between uses: each use reads the subject's row
(``KeyRing.sealing_key`` / ``opening_key``), so once any replica has destroyed
a key no replica opens another value with it. One read serves all the
values of one operation.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.canonical import canonical_json
from shared.errors import Conflict
from shared.eventstore.engine import paramstyle, pooled_cursor, translated_errors
from shared.eventstore.envelope import utc_now_iso
from shared.eventstore.tables import data_keys

PREFIX = "enc:v2:"
SUBJECT_ONLY_PREFIX = "enc:v1:"  # sealed before values were bound to their stream and field
NONCE_BYTES = 12
_ABSENT = object()  # ``KeyRing._load``: the subject has no key row at all


class WrongMasterKey(RuntimeError):
    """The master key does not unwrap the stored data keys: the service runs with another one."""


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)


def _binding(subject_id: str, stream: str, field: str) -> bytes:
    """Associated data of a value: whose it is, and the stream and field it belongs in."""
    return canonical_json([subject_id, stream, field]).encode("utf-8")


class SubjectKey:
    """One subject's data key as read for one operation; ``None`` once destroyed (or never made).

    ``seal`` and ``open`` take the stream and field the value is stored in:
    both are part of the associated data.
    """

    def __init__(self, subject_id: str, key: bytes | None):
        self.subject_id = subject_id
        self._key = key

    def seal(self, value: str | None, stream: str, field: str) -> str | None:
        if value is None:
            return None
        if self._key is None:
            raise Conflict(f"the data key of {self.subject_id} was destroyed (erased); no new PII can be stored")
        sealed = _seal(self._key, value.encode("utf-8"), _binding(self.subject_id, stream, field))
        return PREFIX + base64.b64encode(sealed).decode()

    def open(self, value: Any, stream: str, field: str) -> Any:
        """Plain text; ``None`` for a value this key cannot open; anything not sealed as it is."""
        if not isinstance(value, str):
            return value
        if value.startswith(PREFIX):
            aad, body = _binding(self.subject_id, stream, field), value[len(PREFIX):]
        elif value.startswith(SUBJECT_ONLY_PREFIX):
            aad, body = self.subject_id.encode(), value[len(SUBJECT_ONLY_PREFIX):]
        else:
            return value
        if self._key is None:
            return None
        try:
            return _open(self._key, base64.b64decode(body), aad).decode("utf-8")
        except (InvalidTag, ValueError):
            return None

    def seal_fields(self, data: dict[str, Any], names: Iterable[str], stream: str) -> dict[str, Any]:
        """``data`` with each named field that holds a value sealed in place."""
        sealed = dict(data)
        for name in names:
            if sealed.get(name) is not None:
                sealed[name] = self.seal(str(sealed[name]), stream, name)
        return sealed

    def open_fields(self, data: dict[str, Any], names: Iterable[str], stream: str) -> dict[str, Any]:
        """``data`` with each named field present opened in place."""
        opened = dict(data)
        for name in names:
            if name in opened:
                opened[name] = self.open(opened[name], stream, name)
        return opened


class KeyRing:
    """Creates, reads, and destroys the data keys of one service database."""

    def __init__(self, engine: Engine, master_key: bytes):
        self.engine = engine
        self._master = master_key
        self._select_wrapped = paramstyle(engine, "SELECT wrapped_key FROM data_keys WHERE subject_id = ?")
        self._insert_key = paramstyle(engine, "INSERT INTO data_keys (subject_id, wrapped_key, created_at) "
                                              "VALUES (?, ?, ?)")

    def create(self, subject_id: str) -> SubjectKey:
        """The key of a subject known to be new (a registration): made without looking first."""
        return SubjectKey(subject_id, self._create(subject_id))

    def sealing_key(self, subject_id: str) -> SubjectKey:
        """The subject's live key, made if it has none; ``Conflict`` if it was destroyed."""
        key = self._load(subject_id)
        if key is _ABSENT:
            key = self._create(subject_id)
        if key is None:
            raise Conflict(f"the data key of {subject_id} was destroyed (erased); no new PII can be stored")
        return SubjectKey(subject_id, key)

    def opening_key(self, subject_id: str) -> SubjectKey:
        """The subject's key as it is now (destroyed if it has none here); never made."""
        key = self._load(subject_id)
        return SubjectKey(subject_id, None if key is _ABSENT else key)

    def destroy(self, subject_id: str, connection: Connection | None = None) -> bool:
        """Shred the subject's key; True if there was a live key to destroy.

        A subject without a key gets a destroyed one, so none can be made
        for them later. Pass ``connection`` to shred inside the caller's
        transaction (a reaction applying ``CustomerErased``): SQLite allows one writer.
        """
        if connection is None:
            with self.engine.begin() as own:
                return self.destroy(subject_id, own)
        now = utc_now_iso()
        shredded = connection.execute(update(data_keys).where(data_keys.c.subject_id == subject_id,
                                                              data_keys.c.wrapped_key.is_not(None))
                                      .values(wrapped_key=None, destroyed_at=now)).rowcount > 0
        if not shredded and not self._row_exists(connection, subject_id):
            connection.execute(insert(data_keys), {"subject_id": subject_id, "wrapped_key": None,
                                                   "created_at": now, "destroyed_at": now})
        return shredded

    def is_destroyed(self, subject_id: str) -> bool:
        """Whether the subject's key here was destroyed."""
        with self.engine.connect() as connection:
            row = connection.execute(select(data_keys.c.destroyed_at)
                                     .where(data_keys.c.subject_id == subject_id)).first()
        return row is not None and row[0] is not None

    def _load(self, subject_id: str) -> bytes | None | object:
        """The unwrapped key, ``None`` if destroyed, ``_ABSENT`` if the subject has no key here.

        Every use of a key reads it, so this goes to the driver directly.
        """
        with pooled_cursor(self.engine) as cursor:
            cursor.execute(self._select_wrapped, (subject_id,))
            row = cursor.fetchone()
        if row is None:
            return _ABSENT
        if row[0] is None:
            return None
        try:
            return _open(self._master, bytes(row[0]), subject_id.encode())
        except InvalidTag:
            raise WrongMasterKey(f"the master key does not unwrap the data key of {subject_id}: run with the "
                                 "CRM_MASTER_KEY this database's keys were created with") from None

    def _create(self, subject_id: str) -> bytes | None:
        """A new key, stored wrapped; through the driver, as every registration makes one."""
        key = AESGCM.generate_key(bit_length=256)
        wrapped = _seal(self._master, key, subject_id.encode())
        connection = self.engine.raw_connection()
        try:
            with translated_errors(self.engine, connection):
                connection.dbapi_connection.cursor().execute(self._insert_key, (subject_id, wrapped, utc_now_iso()))
                connection.dbapi_connection.commit()  # PostgreSQL began a transaction; SQLite is in autocommit
        except IntegrityError:  # created concurrently, or destroyed: the stored row wins
            stored = self._load(subject_id)
            return None if stored is _ABSENT else stored
        finally:
            connection.close()
        return key

    @staticmethod
    def _row_exists(connection: Connection, subject_id: str) -> bool:
        return connection.execute(select(data_keys.c.subject_id)
                                  .where(data_keys.c.subject_id == subject_id)).first() is not None
