"""Signed tree heads in the C2SP checkpoint format (a signed note), and the check an auditor runs offline.

The note's text is the origin line, the tree size, the base64 root hash and
one extension line with the time::

    carecrm.audit/ledger
    1024
    <base64 of the 32-byte root>
    timestamp 2026-11-28T20:00:00.000000Z

followed by a blank line and one signature line, ``— <key name> <base64 of
the 4-byte key hash and the 64-byte Ed25519 signature of the text>``. The
key hash is the first 4 bytes of SHA-256(key name, a newline, 0x01, the
public key), as C2SP's signed-note format defines it for Ed25519, so any
tool that reads transparency-log checkpoints can check ours with the
verifier key ``crm audit pubkey`` prints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.signing import EventSigner

ORIGIN = "carecrm.audit/ledger"
ED25519_ALGORITHM = b"\x01"
DASH = "\u2014"


class BadCheckpoint(ValueError):
    """A checkpoint that is malformed, not signed by the key given, or not what it claims."""


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    timestamp: str


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_hash(key: Ed25519PublicKey, name: str = ORIGIN) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALGORITHM + _raw(key)).digest()[:4]


def verifier_key(key: Ed25519PublicKey, name: str = ORIGIN) -> str:
    """The signed-note verifier key: ``name+hex key hash+base64(0x01 || public key)``."""
    return f"{name}+{key_hash(key, name).hex()}+{base64.b64encode(ED25519_ALGORITHM + _raw(key)).decode()}"


def note_text(head: TreeHead) -> str:
    return (f"{ORIGIN}\n{head.tree_size}\n{base64.b64encode(head.root_hash).decode()}\n"
            f"timestamp {head.timestamp}\n")


def sign(signer: EventSigner, head: TreeHead) -> dict:
    """The checkpoint as ``checkpoint()`` answers it: size, root, time, signature and the signed note."""
    text = note_text(head)
    signature = signer.sign_text(text)
    stamp = base64.b64encode(key_hash(signer.public_key) + signature).decode()
    return {"tree_size": head.tree_size, "root_hash": head.root_hash.hex(), "timestamp": head.timestamp,
            "signature": base64.b64encode(signature).decode(), "note": f"{text}\n{DASH} {ORIGIN} {stamp}\n"}


def open_note(note: str, key: Ed25519PublicKey) -> TreeHead:
    """The tree head a signed note carries, if ``key`` signed it; ``BadCheckpoint`` says what is wrong."""
    text, separator, signatures = note.partition("\n\n")
    if not separator or not text:
        raise BadCheckpoint("the note has no blank line between its text and its signatures")
    text += "\n"
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or lines[0] != ORIGIN:
        raise BadCheckpoint(f"the note is not a checkpoint of {ORIGIN}")
    wanted = key_hash(key)
    for line in signatures.split("\n"):
        if not line.startswith(f"{DASH} {ORIGIN} "):
            continue
        try:
            raw = base64.b64decode(line.rsplit(" ", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            continue
        if raw[:4] != wanted or len(raw) != 68:
            continue
        try:
            key.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise BadCheckpoint("the checkpoint's signature does not verify with the key given") from None
        return _head(lines)
    raise BadCheckpoint("the checkpoint carries no signature by the key given")


def _head(lines: list[str]) -> TreeHead:
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        raise BadCheckpoint("the checkpoint's size or root hash is malformed") from None
    if size < 0 or len(root) != 32 or str(size) != lines[1]:
        raise BadCheckpoint("the checkpoint's size or root hash is malformed")
    stamps = [line[len("timestamp "):] for line in lines[3:] if line.startswith("timestamp ")]
    return TreeHead(size, root, stamps[0] if stamps else "")
