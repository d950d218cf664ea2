"""The customer directory: the searchable read model of the customers log.

It holds PII in plain text for search (decrypted while applying), and drops
it when the customer is erased; rebuilding it after erasure finds the keys
destroyed (by the erasure reaction, ``shared.erasure``) and so cannot bring
the PII back. An erasure is never parked here: a parked one would leave the
PII in the directory.
"""

from __future__ import annotations

import json

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, delete, insert, update
from sqlalchemy.engine import Connection

from contracts.customers import PII_FIELDS
from shared.consumers import Projection, handles
from shared.eventstore.envelope import Envelope

metadata = MetaData()

directory = Table(
    "customer_directory", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("name", String(100)),
    Column("name_key", String(100), index=True),
    Column("phone", String(16), index=True),
    Column("email", String(254), index=True),
    Column("birthday", String(10)),
    Column("birthday_calendar", String(10), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("tier", String(32), nullable=False, index=True),
    Column("consents", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("registered_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

tags = Table(
    "customer_tags", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("tag", String(40), primary_key=True, index=True),
)

erasure_receipts = Table(
    "erasure_receipts", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("receipt_id", String(36), nullable=False),
    Column("reason", Text, nullable=False),
    Column("erased_at", String(32), nullable=False),
    Column("erased_by", String(100), nullable=False),
)

_PLAIN_COLUMNS = ("birthday_calendar", "locale", "timezone", "tier")


class CustomerDirectory(Projection):
    name = "customers.directory"
    metadata = metadata
    never_parked = frozenset({"CustomerErased"})
    personal_data = (directory, tags)

    @handles("customers", "CustomerRegistered")
    def registered(self, connection: Connection, envelope: Envelope) -> None:
        data, customer_id = envelope.data, envelope.data["customer_id"]
        pii = self._open(envelope, data)
        connection.execute(insert(directory).values(
            customer_id=customer_id, status="active", consents=json.dumps(sorted(data["consents"])),
            version=envelope.stream_version, registered_at=envelope.recorded_at, updated_at=envelope.recorded_at,
            name_key=_name_key(pii["name"]), **pii, **{key: data[key] for key in _PLAIN_COLUMNS}))
        self._set_tags(connection, customer_id, data["tags"])

    @handles("customers", "CustomerDetailsChanged")
    def details_changed(self, connection: Connection, envelope: Envelope) -> None:
        customer_id = envelope.data["customer_id"]
        changes = dict(envelope.data["changes"])
        new_tags = changes.pop("tags", None)
        values = {**changes, **self._open(envelope, changes)}
        if "name" in values:
            values["name_key"] = _name_key(values["name"])
        self._touch(connection, envelope, **values)
        if new_tags is not None:
            self._set_tags(connection, customer_id, new_tags)

    @handles("customers", "CustomerTierChanged")
    def tier_changed(self, connection: Connection, envelope: Envelope) -> None:
        self._touch(connection, envelope, tier=envelope.data["tier"])

    @handles("customers", "ConsentGiven")
    def consent_given(self, connection: Connection, envelope: Envelope) -> None:
        self._change_consent(connection, envelope, give=True)

    @handles("customers", "ConsentWithdrawn")
    def consent_withdrawn(self, connection: Connection, envelope: Envelope) -> None:
        self._change_consent(connection, envelope, give=False)

    @handles("customers", "CustomerErased")
    def erased(self, connection: Connection, envelope: Envelope) -> None:
        customer_id = envelope.data["customer_id"]
        self._touch(connection, envelope, status="erased", consents="[]", name_key=None,
                    **{field: None for field in PII_FIELDS})
        connection.execute(delete(tags).where(tags.c.customer_id == customer_id))
        connection.execute(insert(erasure_receipts).values(
            customer_id=customer_id, receipt_id=envelope.data["receipt_id"], reason=envelope.data["reason"],
            erased_at=envelope.data["erased_at"], erased_by=envelope.actor["id"]))

    def _change_consent(self, connection: Connection, envelope: Envelope, give: bool) -> None:
        customer_id = envelope.data["customer_id"]
        current = set(json.loads(connection.execute(
            directory.select().with_only_columns(directory.c.consents)
            .where(directory.c.customer_id == customer_id)).scalar_one()))
        purpose = envelope.data["purpose"]
        consents = current | {purpose} if give else current - {purpose}
        self._touch(connection, envelope, consents=json.dumps(sorted(consents)))

    @staticmethod
    def _touch(connection: Connection, envelope: Envelope, **values) -> None:
        connection.execute(update(directory).where(directory.c.customer_id == envelope.data["customer_id"])
                           .values(version=envelope.stream_version, updated_at=envelope.recorded_at, **values))

    @staticmethod
    def _set_tags(connection: Connection, customer_id: str, new_tags: list[str]) -> None:
        connection.execute(delete(tags).where(tags.c.customer_id == customer_id))
        if new_tags:
            connection.execute(insert(tags), [{"customer_id": customer_id, "tag": tag} for tag in sorted(set(new_tags))])

    def _open(self, envelope: Envelope, data: dict) -> dict:
        """The PII fields present in ``data``, opened with the key as it is now (``None`` once erased)."""
        present = {field: data[field] for field in PII_FIELDS if field in data}
        if not present:
            return {}
        return self.keys.opening_key(envelope.data["customer_id"]).open_fields(present, PII_FIELDS, envelope.stream_id)


def _name_key(name: str | None) -> str | None:
    return name.casefold() if name else None
