"""The customers the complaints service knows: its own projection of customers' events.

``file`` asks this table, not the customers service, whether a customer
exists and is not erased (DESIGN.md: each service keeps its own view of
customers). It holds no PII, only ids and status. On ``CustomerErased`` it
also destroys the complaints service's own data key for the customer, which
makes every complaint text sealed under it unreadable (crypto-shredding);
destroying twice has no further effect, so a replay is harmless.

The key is destroyed on the projection's own connection, in the same
transaction as the status change (a second write transaction would wait on
SQLite's single writer). The key ring's cache is dropped then and again by
the service once the transaction has committed (``ComplaintsLog.project``),
so no copy read in between survives.
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, inspect, insert, select, update
from sqlalchemy.engine import Connection, Engine

from shared.crypto import KeyRing
from shared.eventstore.envelope import Envelope
from shared.eventstore.tables import data_keys
from shared.projections import Projection

metadata = MetaData()

known_customers = Table(
    "complaint_customers", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # active, erased
    Column("registered_at", String(32)),
    Column("erased_at", String(32)),
)


class CustomerDirectory(Projection):
    name = "complaints.customers"
    upstreams = ("customers",)
    metadata = metadata

    def __init__(self, keys: KeyRing):
        self.keys = keys

    def apply(self, connection: Connection, envelope: Envelope) -> None:
        if envelope.service != "customers":
            return
        customer_id = envelope.data.get("customer_id")
        if envelope.type == "CustomerRegistered":
            connection.execute(insert(known_customers).values(customer_id=customer_id, status="active",
                                                              registered_at=envelope.recorded_at))
        elif envelope.type == "CustomerErased":
            self._destroy_key(connection, customer_id)
            erased = {"status": "erased", "erased_at": envelope.data["erased_at"]}
            if not connection.execute(update(known_customers).where(known_customers.c.customer_id == customer_id)
                                      .values(**erased)).rowcount:
                connection.execute(insert(known_customers).values(customer_id=customer_id, **erased))

    def _destroy_key(self, connection: Connection, customer_id: str) -> None:
        if inspect(connection).has_table(data_keys.name):  # absent from a rebuild's scratch copy
            self.keys.destroy(customer_id, connection)


def customer_status(engine: Engine, customer_id: str) -> str | None:
    """``active``, ``erased``, or ``None`` for a customer this service has not heard of."""
    with engine.connect() as connection:
        return connection.execute(select(known_customers.c.status)
                                  .where(known_customers.c.customer_id == customer_id)).scalar()
