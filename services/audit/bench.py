"""The audit part of ``crm bench``: ingest, replay and verify rates, and checkpoint and proof times.

* **Ingest** runs the real path: a producer's SQLite log (signed events)
  is caught up into a fresh ledger by the consumer runner with the
  producer's public key, so every event's hash is recomputed and each
  chained batch's signature verified before it is recorded.
* **The large ledger** (``Sizes.audit_ledger_entries``, a million by
  default) is bulk-built: signed events are made in memory (no producer
  database) and appended through ``Ledger.append`` in batches of
  ``BUILD_BATCH`` per transaction, the same code the ingest runs after its
  checks. Memory (RSS) is read at a tenth and at the end of the build: the
  appender keeps only the tree's frontier, so the two stay close.
* **Replay** reads entries back from the store (parsed, page by page),
  **verify** recomputes every source hash, both chains and sampled
  signatures over the whole large ledger, and the tree figures time a
  signed checkpoint, inclusion proofs of random entries and consistency
  proofs from random earlier sizes, each reading O(log n) stored nodes.
"""

from __future__ import annotations

import dataclasses
import random
import resource
import time
from pathlib import Path
from typing import Any

from services.audit import checkpoint as checkpoints
from services.audit import merkle
from services.audit.ingest import LedgerIngest, ledger_for
from services.audit.ledger import Ledger
from services.audit.service import MIGRATIONS
from shared.bench.store_figures import BenchError, Phase, build_log
from shared.bench.workload import Sizes, registration_attributes
from shared.canonical import GENESIS_HASH
from shared.consumer_runner import ConsumerRunner
from shared.eventstore.engine import create_store_engine
from shared.eventstore.envelope import Envelope, content_hash, new_id, utc_now_iso
from shared.eventstore.store import EventStore
from shared.migrations import History, migrate_or_check
from shared.signing import EventCheck, EventSigner, ServiceKeys

BUILD_BATCH = 5000
PROOFS = 200
SOURCE = "customers"


def _rss_mb() -> float:
    """The process's resident memory now (Linux ``/proc``), in MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def _ledger_engine(path: Path):
    engine = create_store_engine(f"sqlite:///{path}", "audit")
    migrate_or_check(engine, History(MIGRATIONS, "alembic_version_audit"), "audit")
    return engine


def ingest_figures(directory: Path, sizes: Sizes, phase: Phase) -> dict[str, Any]:
    """Events per second from a producer's log into the ledger, every event checked."""
    producer = EventStore.open(f"sqlite:///{directory / 'producer.db'}", EventSigner.generate(SOURCE))
    engine = _ledger_engine(directory / "audit-ingest.db")
    try:
        head = build_log(producer, sizes.audit_ingest_events, 500, phase("audit: producer log", sizes.audit_ingest_events))
        keys = ServiceKeys.of(producer.signer)
        runner = ConsumerRunner(engine, LedgerIngest(None), check=EventCheck(keys, own_service="audit"))
        tick = phase("audit: ingest with signature checks", 1)
        began = time.perf_counter()
        outcomes = runner.catch_up(SOURCE, producer.iter_since(0))
        seconds = time.perf_counter() - began
        tick(1)
        if outcomes != {"applied": head}:
            raise BenchError(f"the ingest did not record every event of the bench's own log: {outcomes}")
        report = ledger_for(engine).verify(keys, every_signature=True)
        if not report.ok:
            raise BenchError(f"the ingested ledger does not verify: {report.to_dict()}")
        return {"audit_ingest_events_per_s": head / seconds, "audit_ingest_events": head}
    finally:
        producer.close()
        engine.dispose()


def _signed_events(signer: EventSigner, first: int, count: int, prev_hash: str, attributes: dict) -> list[Envelope]:
    """``count`` chained, signed events of one producer, made in memory."""
    events, now = [], utc_now_iso()
    for position in range(first, first + count):
        customer_id = new_id()
        unsigned = Envelope(new_id(), "CustomerRegistered", 1, SOURCE, f"customer-{customer_id}", 1, position, now,
                            now, {"id": "crm-bench", "role": "service"}, customer_id, None,
                            {"customer_id": customer_id, **attributes}, prev_hash, "")
        event_hash = content_hash(unsigned)
        events.append(dataclasses.replace(unsigned, hash=event_hash, signature=signer.sign(event_hash)))
        prev_hash = event_hash
    return events


def build_ledger(engine, entries: int, phase: Phase) -> tuple[ServiceKeys, dict[str, float]]:
    """Bulk-build a ledger of ``entries`` genuine, signed events; RSS at a tenth and at the end."""
    signer, ledger = EventSigner.generate(SOURCE), ledger_for(engine)
    attributes = registration_attributes()
    tick = phase(f"audit: bulk-build a ledger of {entries:,} entries", entries)
    prev, built, memory = GENESIS_HASH, 0, {}
    while built < entries:
        count = min(BUILD_BATCH, entries - built)
        events = _signed_events(signer, built + 1, count, prev, attributes)
        with engine.begin() as connection:
            ledger.append(connection, events)
        prev, built = events[-1].hash, built + count
        tick(count)
        if "audit_rss_mb_at_tenth" not in memory and built >= entries // 10:
            memory["audit_rss_mb_at_tenth"] = _rss_mb()
    memory["audit_rss_mb_at_full"] = _rss_mb()
    return ServiceKeys.of(signer), memory


def ledger_figures(directory: Path, sizes: Sizes, phase: Phase) -> dict[str, Any]:
    """Replay, verify and tree figures over a bulk-built ledger of ``Sizes.audit_ledger_entries``."""
    engine = _ledger_engine(directory / "audit-ledger.db")
    try:
        keys, figures = build_ledger(engine, sizes.audit_ledger_entries, phase)
        ledger = Ledger(engine)  # a fresh one: nothing cached from the build
        tick = phase("audit: replay, verify, checkpoint, proofs", 1)
        began = time.perf_counter()
        replayed = sum(1 for _entry in ledger.entries(0))
        replay_seconds = time.perf_counter() - began
        began = time.perf_counter()
        report = ledger.verify(keys)
        verify_seconds = time.perf_counter() - began
        if replayed != sizes.audit_ledger_entries or not report.ok or report.checked != replayed:
            raise BenchError(f"the bench's own ledger did not replay or verify: {replayed}, {report.to_dict()}")
        figures.update(tree_figures(ledger, engine, replayed))
        tick(1)
        figures.update({"audit_replay_events_per_s": replayed / replay_seconds,
                        "audit_verify_events_per_s": replayed / verify_seconds,
                        "audit_ledger_entries": replayed})
        return figures
    finally:
        engine.dispose()


def tree_figures(ledger: Ledger, engine, size: int) -> dict[str, Any]:
    """Milliseconds for a signed checkpoint, an inclusion proof and a consistency proof (each checked)."""
    signer, chosen = EventSigner.generate("audit"), random.Random(size)
    began = time.perf_counter()
    with engine.connect() as connection:
        root = ledger.root(connection, size)
    signed = checkpoints.sign(signer, checkpoints.TreeHead(size, root, utc_now_iso()))
    checkpoint_ms = (time.perf_counter() - began) * 1e3
    checkpoints.open_note(signed["note"], signer.public_key)
    inclusion = consistency = 0.0
    with engine.connect() as connection:
        for _ in range(PROOFS):
            position = chosen.randint(1, size)
            began = time.perf_counter()
            proof = ledger.inclusion(connection, position, size)
            inclusion += time.perf_counter() - began
            if not merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), position - 1, size,
                                           [bytes.fromhex(value) for value in proof["path"]], root):
                raise BenchError(f"the inclusion proof of entry {position} does not verify")
            old = chosen.randint(1, size)
            began = time.perf_counter()
            path = ledger.consistency(connection, old, size)
            consistency += time.perf_counter() - began
            if not merkle.verify_consistency(old, size, ledger.root(connection, old), root,
                                             [bytes.fromhex(value) for value in path]):
                raise BenchError(f"the consistency proof from {old} to {size} does not verify")
    return {"audit_checkpoint_ms": checkpoint_ms, "audit_inclusion_proof_ms": inclusion / PROOFS * 1e3,
            "audit_consistency_proof_ms": consistency / PROOFS * 1e3}


def audit_figures(directory: Path, sizes: Sizes, phase: Phase) -> dict[str, Any]:
    """Every audit figure, on fresh SQLite files in ``directory``."""
    return {**ingest_figures(directory, sizes, phase), **ledger_figures(directory, sizes, phase)}
