"""The customers the complaints service knows: its own projection of the customers' events.

``file`` asks this table, not the customers service, whether a customer
exists and is not erased, so filing works while the customers service is
busy or down. It holds no personal data, only ids and status. Destroying
the complaints service's data key on erasure is not its job: that is the
erasure reaction (``shared.erasure``), which a rebuild never runs again.
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import Column, MetaData, String, Table, insert, select, update
from sqlalchemy.engine import Connection, Engine

from shared.consumers import Projection, handles
from shared.eventstore.envelope import Envelope

metadata = MetaData()

known_customers = Table(
    "complaint_customers", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # active, erased
    Column("registered_at", String(32)),
    Column("erased_at", String(32)),
)


class KnownCustomers(Projection):
    name = "complaints.customers"
    metadata = metadata
    never_parked = frozenset({"CustomerErased"})

    @handles("customers", "CustomerRegistered")
    def registered(self, connection: Connection, envelope: Envelope) -> None:
        connection.execute(insert(known_customers).values(**_registered_row(envelope)))

    def apply_batch(self, connection: Connection, envelopes: Sequence[Envelope]) -> None:
        """Registrations, most of any backlog, go in one multi-row INSERT; other events apply in order."""
        rows: list[dict[str, str]] = []
        for envelope in envelopes:
            if (envelope.service, envelope.type) == ("customers", "CustomerRegistered"):
                rows.append(_registered_row(envelope))
                continue
            if rows:
                connection.execute(insert(known_customers), rows)
                rows = []
            self.apply(connection, envelope)
        if rows:
            connection.execute(insert(known_customers), rows)

    @handles("customers", "CustomerErased")
    def erased(self, connection: Connection, envelope: Envelope) -> None:
        customer_id = envelope.data["customer_id"]
        erased = {"status": "erased", "erased_at": envelope.data["erased_at"]}
        if not connection.execute(update(known_customers).where(known_customers.c.customer_id == customer_id)
                                  .values(**erased)).rowcount:
            connection.execute(insert(known_customers).values(customer_id=customer_id, **erased))


def _registered_row(envelope: Envelope) -> dict[str, str]:
    return {"customer_id": envelope.data["customer_id"], "status": "active", "registered_at": envelope.recorded_at}


def customer_status(engine: Engine, customer_id: str) -> str | None:
    """``active``, ``erased``, or ``None`` for a customer this service has not heard of."""
    with engine.connect() as connection:
        return connection.execute(select(known_customers.c.status)
                                  .where(known_customers.c.customer_id == customer_id)).scalar()
