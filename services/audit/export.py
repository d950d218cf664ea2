"""Evidence bundles: ledger entries an auditor can check offline, with nothing but the audit's public key.

A bundle holds the chosen entries (each the source event as its producer
signed it, the ledger fields, and an inclusion proof), a manifest (the
filters, the count, a digest of the entries' ledger hashes, the producers'
public keys, when and by whom), a signed checkpoint the proofs lead to, and
the audit key's signature over the manifest. ``verify_bundle`` checks all
of it without a broker or a database:

1. the checkpoint is signed by the key given (``services.audit.checkpoint``);
2. each entry: its event's content gives its hash (else *edited*), its
   ledger hash recomputes (else *edited*), the producer signed it (else
   *bad signature*), its inclusion proof leads to the checkpoint's root
   (else *not in the ledger*), positions ascend (else *reordered*), and
   entries next to each other in a source continue its chain;
3. the manifest's signature, count and digest cover exactly these entries
   (else *missing* or *added*).

The first failure is named with the entry's index and ledger position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from marshmallow import INCLUDE, Schema, fields, validate

from services.audit import checkpoint as checkpoints
from services.audit import merkle
from services.audit.ledger import entry_hash, leaf_of
from shared.canonical import canonical_json
from shared.consumers import as_envelope
from shared.ed25519_text import public_key_from_text
from shared.errors import ValidationError
from shared.eventstore.envelope import content_hash
from shared.signing import ServiceKeys, EventSigner
from shared.validation import load

FORMAT = "carecrm-audit-export/1"
MANIFEST_PREFIX = "carecrm audit export v1\n"
HEX64 = r"^[0-9a-f]{64}$"


def manifest_text(manifest: Mapping[str, Any]) -> str:
    """What the manifest signature covers: a fixed prefix and the SHA-256 of the manifest's canonical JSON."""
    return MANIFEST_PREFIX + hashlib.sha256(canonical_json(manifest).encode()).hexdigest() + "\n"


def entries_digest(entries: Sequence[Mapping[str, Any]]) -> str:
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(f"{entry['ledger_position']}:{entry['ledger_hash']}\n".encode())
    return digest.hexdigest()


def make_bundle(entries: list[dict[str, Any]], checkpoint: dict[str, Any], signer: EventSigner,
                producer_keys: Mapping[str, Sequence[str]], filters: Mapping[str, Any], created_at: str,
                created_by: str) -> dict[str, Any]:
    """A bundle of ``entries`` (each with its ``proof`` against ``checkpoint``) signed by ``signer``."""
    manifest = {
        "format": FORMAT, "filters": dict(filters), "count": len(entries),
        "first_position": entries[0]["ledger_position"] if entries else None,
        "last_position": entries[-1]["ledger_position"] if entries else None,
        "tree_size": checkpoint["tree_size"], "root_hash": checkpoint["root_hash"],
        "entries_sha256": entries_digest(entries),
        "producer_keys": {service: list(keys) for service, keys in sorted(producer_keys.items())},
        "created_at": created_at, "created_by": created_by,
    }
    signature = base64.b64encode(signer.sign_text(manifest_text(manifest))).decode()
    return {"format": FORMAT, "manifest": manifest, "checkpoint": checkpoint, "entries": entries,
            "signature": signature}


# -- checking, offline -------------------------------------------------------------------

class _Entry(Schema):
    class Meta:
        unknown = INCLUDE

    ledger_position = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    ledger_prev_hash = fields.String(required=True, validate=validate.Regexp(HEX64))
    ledger_hash = fields.String(required=True, validate=validate.Regexp(HEX64))
    ingested_at = fields.String(required=True)
    customer_id = fields.String(required=True, allow_none=True)
    event_id = fields.String(required=True)
    type = fields.String(required=True)
    schema_version = fields.Integer(required=True, strict=True)
    service = fields.String(required=True)
    stream_id = fields.String(required=True)
    stream_version = fields.Integer(required=True, strict=True)
    position = fields.Integer(required=True, strict=True)
    occurred_at = fields.String(required=True)
    recorded_at = fields.String(required=True)
    actor = fields.Dict(required=True)
    correlation_id = fields.String(required=True)
    causation_id = fields.String(required=True, allow_none=True)
    data = fields.Dict(required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)
    signature = fields.String(required=True)
    proof = fields.List(fields.String(validate=validate.Regexp(HEX64)), required=True)


class _Manifest(Schema):
    class Meta:
        unknown = INCLUDE

    format = fields.String(required=True, validate=validate.Equal(FORMAT))
    count = fields.Integer(required=True, strict=True)
    tree_size = fields.Integer(required=True, strict=True)
    root_hash = fields.String(required=True)
    entries_sha256 = fields.String(required=True)
    producer_keys = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True)


class _Checkpoint(Schema):
    class Meta:
        unknown = INCLUDE

    tree_size = fields.Integer(required=True, strict=True)
    root_hash = fields.String(required=True, validate=validate.Regexp(HEX64))
    note = fields.String(required=True)


class _Bundle(Schema):
    format = fields.String(required=True, validate=validate.Equal(FORMAT))
    manifest = fields.Nested(_Manifest, required=True)
    checkpoint = fields.Nested(_Checkpoint, required=True)
    entries = fields.List(fields.Nested(_Entry), required=True)
    signature = fields.String(required=True)


def _report(ok: bool, checked: int, reason: str | None = None, index: int | None = None,
            position: int | None = None) -> dict[str, Any]:
    return {"ok": ok, "checked": checked, "first_bad_entry": index, "ledger_position": position, "reason": reason}


def verify_bundle(bundle: Any, public_key: Ed25519PublicKey | str) -> dict[str, Any]:
    """Check a bundle with the audit's public key alone; ``ok``, or the first bad entry and why.

    A bundle that is not even shaped like one raises ``ValidationError``
    naming the fields.
    """
    key = public_key_from_text(public_key) if isinstance(public_key, str) else public_key
    load(_Bundle(), bundle)
    manifest, checkpoint, entries = bundle["manifest"], bundle["checkpoint"], bundle["entries"]
    try:
        head = checkpoints.open_note(checkpoint["note"], key)
    except checkpoints.BadCheckpoint as error:
        return _report(False, 0, f"checkpoint: {error}")
    if head.tree_size != checkpoint["tree_size"] or head.root_hash.hex() != checkpoint["root_hash"]:
        return _report(False, 0, "checkpoint: its size or root differs from its signed note")
    try:
        producers = ServiceKeys({service: [public_key_from_text(text) for text in texts]
                                 for service, texts in manifest["producer_keys"].items()})
    except ValueError as error:
        return _report(False, 0, f"manifest: a producer key is malformed: {error}")
    last_position = 0
    last_of: dict[str, tuple[int, str]] = {}
    for index, entry in enumerate(entries):
        position = entry["ledger_position"]
        problem = _entry_problem(entry, head, producers, last_position, last_of)
        if problem is not None:
            return _report(False, index, problem, index, position)
        last_position = position
        last_of[entry["service"]] = (entry["position"], entry["hash"])
    try:
        signature = base64.b64decode(bundle["signature"], validate=True)
        key.verify(signature, manifest_text(manifest).encode())
    except (binascii.Error, ValueError, InvalidSignature):
        return _report(False, len(entries), "manifest: its signature does not verify with the key given")
    if manifest["count"] != len(entries):
        what = "missing" if len(entries) < manifest["count"] else "added"
        return _report(False, len(entries), f"{what}: the manifest lists {manifest['count']} entries, "
                                            f"the bundle holds {len(entries)}")
    if manifest["entries_sha256"] != entries_digest(entries) or manifest["tree_size"] != head.tree_size \
            or manifest["root_hash"] != checkpoint["root_hash"]:
        return _report(False, len(entries), "the entries or the checkpoint are not the ones the manifest signed")
    return _report(True, len(entries))


def _entry_problem(entry: Mapping[str, Any], head: checkpoints.TreeHead, producers: ServiceKeys,
                   last_position: int, last_of: Mapping[str, tuple[int, str]]) -> str | None:
    position, service = entry["ledger_position"], entry["service"]
    try:
        recomputed = content_hash(as_envelope(entry))
    except (TypeError, ValueError, KeyError) as error:
        return f"edited: the event cannot be hashed ({error})"
    if recomputed != entry["hash"]:
        return f"edited: the {service} event's content does not match its hash"
    if entry_hash(position, entry["ledger_prev_hash"], entry["ingested_at"], entry["customer_id"], service,
                  entry["position"], entry["prev_hash"], entry["hash"], entry["signature"], entry["type"],
                  entry["stream_id"], entry["recorded_at"]) != entry["ledger_hash"]:
        return "edited: the entry does not match its ledger hash"
    if not producers.signed_by(service, entry["hash"], entry["signature"]):
        return f"bad signature: the event is not signed by {service}'s key"
    if position <= last_position:
        return f"reordered: ledger position {position} comes after {last_position}"
    earlier = last_of.get(service)
    if earlier is not None and earlier[0] + 1 == entry["position"] and earlier[1] != entry["prev_hash"]:
        return f"reordered: the {service} event does not continue the {service} chain"
    if position > head.tree_size or not merkle.verify_inclusion(
            leaf_of(entry["ledger_hash"]), position - 1, head.tree_size,
            [bytes.fromhex(value) for value in entry["proof"]], head.root_hash):
        return "not in the ledger: its inclusion proof does not lead to the checkpoint's root"
    return None


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as ``crm audit pubkey`` prints it (base64 or PEM); ``ValidationError`` if it is none."""
    try:
        return public_key_from_text(text.strip())
    except ValueError as error:
        raise ValidationError({"pubkey": [f"not an Ed25519 public key: {error}"]}) from None
