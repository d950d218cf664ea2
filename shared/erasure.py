"""What every service does when a customer is erased: destroy its own data key for them.

Each service seals the personal data it writes under its own per-customer
key (``shared.crypto``). ``CustomerErased`` from the customers service
is the one signal; this reaction shreds the key in the same transaction
that records the event as applied, so it happens exactly once, and a
rebuild never runs it again. It is never parked: if the key table cannot
be written, the reaction retries with back-off until it can.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from shared.consumers import Reaction, handles
from shared.eventstore.envelope import Envelope

ERASURE_UPSTREAM = "customers"
ERASURE_EVENT = "CustomerErased"


class DestroyDataKeyOnErasure(Reaction):
    """Crypto-shreds the customer's key of this service: every text sealed under it becomes unreadable."""

    name = "data-keys.erasure"

    @handles(ERASURE_UPSTREAM, ERASURE_EVENT)
    def destroy(self, connection: Connection, envelope: Envelope) -> None:
        self.keys.destroy(envelope.data["customer_id"], connection)
