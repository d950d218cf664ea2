"""audit — compliance (合规检查, 监督与审计): one tamper-evident ledger of every service's events.

The ledger is filled by ``LedgerIngest`` (every other discovered service,
every event type, each event checked before it is recorded). Every method
here is a read of the ledger for an auditor or an admin, and each call is
itself recorded in the audit service's own log as ``AuditQueried`` (who
asked, what, how many entries it answered). Checkpoints are signed with
the audit service's own Ed25519 key, the key it signs its events with;
``pubkey`` gives its public half.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from contracts import audit as contract
from services.audit import checkpoint as checkpoints
from services.audit import queries
from services.audit.export import make_bundle
from services.audit.ingest import LedgerIngest, ledger_for
from services.audit.ledger import Ledger
from shared.auth import Authorization, allow
from shared.ed25519_text import public_key_text
from shared.errors import NotFound, ValidationError
from shared.event_log import EventLog
from shared.eventstore.envelope import NewEvent, utc_now_iso
from shared.eventstore.tables import projection_tracking
from shared.log_endpoints import LogEndpoints
from shared.rpc import rpc
from shared.validation import load_call

MIGRATIONS = Path(__file__).parent / "migrations"
AUDITORS = ("auditor", "admin")
QUERIES_STREAM = "audit-queries"
CHECKPOINTS_STREAM = "audit-checkpoints"


class AuditService(LogEndpoints):
    name = "audit"

    auth = Authorization()
    log = EventLog(consumers=[LedgerIngest], migrations=MIGRATIONS)

    @rpc
    @allow(*AUDITORS)
    def replay(self, *args, **kwargs):
        """Entries in ledger order, filtered; ``next_cursor`` continues after the last one, however the ledger grows."""
        query = load_call(contract.Replay(), args, kwargs)
        page = queries.replay(self.log.store.engine, query["filters"], query["cursor"], query["limit"])
        self._record("replay", query, len(page["entries"]))
        return page

    @rpc
    @allow(*AUDITORS)
    def customer_history(self, *args, **kwargs):
        """One customer's timeline across every service, in ledger order."""
        query = load_call(contract.CustomerHistory(), args, kwargs)
        page = queries.replay(self.log.store.engine, {"customer_id": query["customer_id"]}, query["cursor"],
                              query["limit"])
        self._record("customer_history", query, len(page["entries"]))
        return {"customer_id": query["customer_id"], **page}

    @rpc
    @allow(*AUDITORS)
    def state_as_of(self, *args, **kwargs):
        """The customer's record as it was at ``at``, folded from the ledger by the customers service's own fold."""
        query = load_call(contract.StateAsOf(), args, kwargs)
        answer = queries.state_as_of(self.log.store.engine, query["customer_id"], query["at"])
        self._record("state_as_of", query, answer["events"])
        if answer["record"] is None:
            raise NotFound(f"customer {query['customer_id']} had no record at {query['at']}")
        return answer

    @rpc
    @allow(*AUDITORS)
    def verify(self, *args, **kwargs):
        """Recompute the ledger's chain and each source's chain: ok, or the first bad position and what is wrong."""
        query = load_call(contract.Verify(), args, kwargs)
        report = self._ledger.verify(self.log.provider.service_keys, query["from_position"], query["to_position"],
                                     every_signature=query["every_signature"],
                                     ingested_up_to=self._ingested_up_to()).to_dict()
        if report["ok"] and query["sources"]:
            report = {**report, **queries.check_sources(self.log.store.engine, self.log.provider.fetch_upstream)}
        self._record("verify", query, report["checked"])
        return report

    @rpc
    @allow(*AUDITORS)
    def checkpoint(self, *args, **kwargs):
        """A signed tree head over the whole ledger (RFC 6962 root, C2SP signed note)."""
        load_call(contract.SignCheckpoint(), args, kwargs)
        signed = self._sign_checkpoint()
        self._record("checkpoint", {}, signed["tree_size"])
        return signed

    @rpc
    @allow(*AUDITORS)
    def prove(self, *args, **kwargs):
        """The inclusion proof of one entry in a checkpoint's tree (the latest tree if none is given)."""
        query = load_call(contract.Prove(), args, kwargs)
        with self.log.store.engine.connect() as connection:
            size = self._tree_size_of(connection, query["checkpoint"], "checkpoint")
            if query["ledger_position"] > size:
                raise ValidationError({"ledger_position": [f"beyond the checkpoint's tree of {size} entries"]})
            proof = self._ledger.inclusion(connection, query["ledger_position"], size)
        self._record("prove", query, 1)
        return proof

    @rpc
    @allow(*AUDITORS)
    def consistency(self, *args, **kwargs):
        """Proof that the ``old`` checkpoint's tree is a prefix of the ``new`` one's (the latest if none)."""
        query = load_call(contract.Consistency(), args, kwargs)
        with self.log.store.engine.connect() as connection:
            old = self._tree_size_of(connection, query["old"], "old")
            new = self._tree_size_of(connection, query["new"], "new")
            if not 0 < old <= new:
                raise ValidationError({"old": [f"tree size {old} must be at least 1 and at most the new {new}"]})
            path = self._ledger.consistency(connection, old, new)
        self._record("consistency", query, len(path))
        return {"old_size": old, "new_size": new, "path": path}

    @rpc
    @allow(*AUDITORS)
    def export(self, *args, **kwargs):
        """A signed bundle of the filtered entries that ``crm audit verify-export`` checks offline."""
        query = load_call(contract.Export(), args, kwargs)
        signed = self._sign_checkpoint()
        entries = queries.export_entries(self.log.store.engine, self._ledger, query["filters"], query["limit"],
                                         signed["tree_size"])
        keys = self.log.provider.settings.signing.public_texts()
        bundle = make_bundle(entries, signed, self.log.store.signer,
                             {service: keys.get(service, ()) for service in {entry["service"] for entry in entries}},
                             query["filters"], utc_now_iso(), self.principal.actor_id)
        self._record("export", query, len(entries))
        return bundle

    @rpc
    @allow(*AUDITORS)
    def pubkey(self, *args, **kwargs):
        """The public key checkpoints and exports are signed with, and its signed-note verifier key."""
        load_call(contract.Pubkey(), args, kwargs)
        key = self.log.store.signer.public_key
        return {"public_key": public_key_text(key), "verifier_key": checkpoints.verifier_key(key),
                "origin": checkpoints.ORIGIN}

    # -- helpers ---------------------------------------------------------------

    @property
    def _ledger(self) -> Ledger:
        return ledger_for(self.log.store.engine)

    def _sign_checkpoint(self) -> dict[str, Any]:
        """Sign the tree head of the whole ledger now, and keep it in the audit's own log."""
        with self.log.store.engine.connect() as connection:
            size = self._ledger.size(connection)
            root = self._ledger.root(connection, size)
        head = checkpoints.TreeHead(size, root, utc_now_iso())
        signed = checkpoints.sign(self.log.store.signer, head)
        self.log.append(self.principal, CHECKPOINTS_STREAM, [NewEvent("CheckpointSigned", {
            "tree_size": size, "root_hash": signed["root_hash"], "timestamp": head.timestamp})], None)
        return signed

    def _record(self, method: str, arguments: dict[str, Any], answered: int) -> None:
        """Keep who asked what in the audit service's own log."""
        self.log.append(self.principal, QUERIES_STREAM, [NewEvent("AuditQueried", {
            "method": method, "arguments": {key: value for key, value in arguments.items() if value is not None},
            "answered": answered})], None)

    def _ingested_up_to(self) -> dict[str, int]:
        tracking = projection_tracking.c
        with self.log.store.engine.connect() as connection:
            return {upstream: position for upstream, position in connection.execute(
                select(tracking.upstream, tracking.position).where(tracking.projection == LedgerIngest.name))}

    def _tree_size_of(self, connection, checkpoint: dict[str, Any] | None, field: str) -> int:
        """The tree size a checkpoint names, once its root is this ledger's root at that size."""
        size = self._ledger.size(connection)
        if checkpoint is None:
            return size
        if checkpoint["tree_size"] > size:
            raise ValidationError({field: [f"tree size {checkpoint['tree_size']} is beyond the ledger's {size}"]})
        if self._ledger.root(connection, checkpoint["tree_size"]).hex() != checkpoint["root_hash"]:
            raise ValidationError({field: ["its root hash is not this ledger's root at that size: it is not a "
                                           "checkpoint of this ledger, or the ledger was changed since"]})
        return checkpoint["tree_size"]
