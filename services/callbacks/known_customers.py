"""The customers the callbacks service knows: its own projection of the customers' events.

``schedule``, ``sample``, the periodic rule and the satisfaction callback
after a resolved complaint ask this table, not the customers service,
whether a customer may be called: known, not erased, with the
``callbacks`` consent, and in which time zone their calling window lies.
It holds no personal data: ids, status, zone, tier and the consent.
Cancelling the pending callbacks of a customer who withdrew the consent or
was erased is a reaction (``reactions.CancelWhenNotCallable``), since a
rebuild must never run it again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Column, MetaData, String, Table, insert, select, update
from sqlalchemy.engine import Connection, Engine

from shared.consumers import Projection, handles
from shared.eventstore.envelope import Envelope

CONSENT = "callbacks"

metadata = MetaData()

known_customers = Table(
    "callback_customers", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # active, erased
    Column("timezone", String(64), nullable=False),
    Column("tier", String(32), nullable=False, index=True),
    Column("callbacks_consent", Boolean, nullable=False),
    Column("updated_at", String(32), nullable=False),
)


class KnownCustomers(Projection):
    name = "callbacks.customers"
    metadata = metadata
    never_parked = frozenset({"CustomerErased", "ConsentWithdrawn"})

    @handles("customers", "CustomerRegistered")
    def registered(self, connection: Connection, envelope: Envelope) -> None:
        data = envelope.data
        connection.execute(insert(known_customers).values(
            customer_id=data["customer_id"], status="active", timezone=data["timezone"], tier=data["tier"],
            callbacks_consent=CONSENT in data["consents"], updated_at=envelope.recorded_at))

    @handles("customers", "CustomerDetailsChanged")
    def details_changed(self, connection: Connection, envelope: Envelope) -> None:
        if envelope.data["changes"].get("timezone"):
            self._set(connection, envelope, timezone=envelope.data["changes"]["timezone"])

    @handles("customers", "CustomerTierChanged")
    def tier_changed(self, connection: Connection, envelope: Envelope) -> None:
        self._set(connection, envelope, tier=envelope.data["tier"])

    @handles("customers", "ConsentGiven", "ConsentWithdrawn")
    def consent_changed(self, connection: Connection, envelope: Envelope) -> None:
        if envelope.data["purpose"] == CONSENT:
            self._set(connection, envelope, callbacks_consent=envelope.type == "ConsentGiven")

    @handles("customers", "CustomerErased")
    def erased(self, connection: Connection, envelope: Envelope) -> None:
        customer_id = envelope.data["customer_id"]
        erased = {"status": "erased", "callbacks_consent": False, "updated_at": envelope.recorded_at}
        if not connection.execute(update(known_customers).where(known_customers.c.customer_id == customer_id)
                                  .values(**erased)).rowcount:
            connection.execute(insert(known_customers).values(customer_id=customer_id, timezone="UTC",
                                                              tier="general", **erased))

    @staticmethod
    def _set(connection: Connection, envelope: Envelope, **values: Any) -> None:
        connection.execute(update(known_customers)
                           .where(known_customers.c.customer_id == envelope.data["customer_id"],
                                  known_customers.c.status == "active")
                           .values(updated_at=envelope.recorded_at, **values))


def customer(engine: Engine, customer_id: str) -> dict[str, Any] | None:
    """The customer's row (status, timezone, tier, callbacks_consent), or ``None`` if not known here."""
    with engine.connect() as connection:
        row = connection.execute(select(known_customers)
                                 .where(known_customers.c.customer_id == customer_id)).mappings().first()
    return dict(row) if row is not None else None


def customers(engine: Engine, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(known_customers)
                                  .where(known_customers.c.customer_id.in_(customer_ids))).mappings().all()
    return {row["customer_id"]: dict(row) for row in rows}


def callable_customers_of_tier(engine: Engine, tier: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(known_customers)
                                  .where(known_customers.c.tier == tier, known_customers.c.status == "active",
                                         known_customers.c.callbacks_consent.is_(True))
                                  .order_by(known_customers.c.customer_id)).mappings().all()
    return [dict(row) for row in rows]


def is_callable(row: dict[str, Any] | None) -> bool:
    return row is not None and row["status"] == "active" and bool(row["callbacks_consent"])
