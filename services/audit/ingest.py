"""What fills the ledger: a reaction to every event of every other service.

It follows every service ``shared.discovery`` finds but audit itself, all
event types (``every_service_but``), so a service installed later is
audited without a change here. The consumer runner does the rest as for
any consumer: each event is checked before it is applied (hash recomputed,
producer's signature verified; a chained catch-up batch at the cost of its
last signature), a forged or unsigned one is refused and shown in
``health()``, gaps are pulled with ``events_since``, and the tracking row
moves in the transaction that appends to the ledger. It is a reaction, not
a projection: the ledger is never rebuilt, and an event that cannot be
recorded is retried, never parked.
"""

from __future__ import annotations

import weakref
from typing import Sequence

from sqlalchemy.engine import Connection, Engine

from services.audit.ledger import Ledger
from shared.consumers import Reaction
from shared.ed25519_text import raw_bytes
from shared.eventstore.envelope import Envelope
from shared.signing import SIGNATURE_BYTES

_ledgers: "weakref.WeakKeyDictionary[Engine, Ledger]" = weakref.WeakKeyDictionary()


def ledger_for(engine: Engine) -> Ledger:
    """The one ``Ledger`` of a database in this process (it keeps the tree's frontier between appends)."""
    ledger = _ledgers.get(engine)
    if ledger is None:
        ledger = _ledgers[engine] = Ledger(engine)
    return ledger


class LedgerIngest(Reaction):
    name = "audit.ledger"
    every_service_but = "audit"
    catch_up_batch = 1000  # a chained batch costs one signature check; larger batches, fewer commits

    def apply(self, connection: Connection, envelope: Envelope) -> None:
        self.apply_batch(connection, [envelope])

    def apply_batch(self, connection: Connection, envelopes: Sequence[Envelope]) -> None:
        """Append checked events; a malformed signature fails the batch, so each is checked alone."""
        for envelope in envelopes:
            raw_bytes(envelope.signature, SIGNATURE_BYTES)  # ValueError: the runner checks them one by one
        ledger_for(connection.engine).append(connection, envelopes)
