"""A real audit ledger over real databases, without a broker, for the ledger's own tests.

Two producers (``customers`` and ``complaints``) append signed events to
their own SQLite logs; the audit database (SQLite or PostgreSQL, migrated
by its owner as in production) takes them through the real ingest path:
the consumer runner with the producers' keys checking every event.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy.engine import Engine

from services.audit.ingest import LedgerIngest, ledger_for
from services.audit.ledger import Ledger
from services.audit.service import MIGRATIONS
from shared.consumer_runner import ConsumerRunner
from shared.eventstore.engine import STORE_HISTORY, create_store_engine, database_engine
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import EventStore
from shared.migrations import History, migrate_or_check
from shared.service_migration import migrate_database
from shared.signing import EventCheck, ServiceKeys
from tests.postgres_roles import owner_url
from tests.support import signer

AUDIT_HISTORY = History(MIGRATIONS, "alembic_version_audit")
PRODUCERS = ("customers", "complaints")


@dataclass
class Audited:
    engine: Engine  # as the audit service connects
    owner: Engine  # as someone who owns the database: the tamperer
    runner: ConsumerRunner
    sources: dict[str, EventStore]
    keys: ServiceKeys

    @property
    def ledger(self) -> Ledger:
        return ledger_for(self.engine)

    def ingest(self) -> None:
        for service, store in self.sources.items():
            self.runner.catch_up(service, store.iter_since(self.runner.position(service)))

    def add_events(self, count: int, customer: str = "c-1") -> None:
        """``count`` events per producer, about one customer, then ingested."""
        context = CommandContext("agent-7", "agent")
        customers, complaints = self.sources["customers"], self.sources["complaints"]
        for number in range(count):
            version = customers.stream_version(f"customer-{customer}")
            kind = "CustomerRegistered" if version == 0 else "CustomerTierChanged"
            customers.append(f"customer-{customer}", [NewEvent(kind, {"customer_id": customer, "tier": "partner",
                                                                      "note": number})], version, context)
            complaint = f"complaint-{customer}-{number // 3}"
            first = complaints.stream_version(complaint) == 0
            data = {"customer_id": customer, "summary": "enc:v2:xyz"} if first else {"note": number}
            complaints.append(complaint, [NewEvent("ComplaintFiled" if first else "ComplaintAssigned", data)],
                              None, context)
        self.ingest()

    def add_batch(self, customer_ids: list[str], stream: str = "pii-access-batch-b1") -> None:
        """One customers event about several customers (``customer_ids``), then ingested."""
        self.sources["customers"].append(stream, [NewEvent("PiiAccessed", {
            "customer_ids": customer_ids, "purpose": "marketing", "fields": ["name", "phone"],
            "method": "reveal_contacts"})], None, CommandContext("campaigns", "service"))
        self.ingest()

    def verify(self, **kwargs):
        tracking = self.runner.positions()
        return self.ledger.verify(self.keys, ingested_up_to=tracking, **kwargs)


def _audit_engines(url: str) -> tuple[Engine, Engine]:
    if url.startswith("postgresql"):
        migrate_database(owner_url(url), url, [STORE_HISTORY, AUDIT_HISTORY])
        return create_store_engine(url, "audit"), database_engine(owner_url(url))
    engine = create_store_engine(url, "audit")
    migrate_or_check(engine, AUDIT_HISTORY, "audit")
    return engine, engine


@contextlib.contextmanager
def audited(url: str, data_dir: Path) -> Iterator[Audited]:
    engine, owner = _audit_engines(url)
    sources = {service: EventStore.open(f"sqlite:///{data_dir / (service + '.db')}", signer(service))
               for service in PRODUCERS}
    keys = ServiceKeys({service: [signer(service).public_key] for service in PRODUCERS})

    def fetch(upstream: str, after: int, limit: int):
        return [envelope.to_dict() for envelope in sources[upstream].read_since(after, limit, upcast=False)]

    runner = ConsumerRunner(engine, LedgerIngest(None), fetch, check=EventCheck(keys, own_service="audit"))
    try:
        yield Audited(engine, owner, runner, sources, keys)
    finally:
        for store in sources.values():
            store.close()
        engine.dispose()
        if owner is not engine:
            owner.dispose()
