"""Who produced an event: Ed25519 signatures over event hashes.

A service signs the ``hash`` of each event it appends with its own private
key; the signature travels in the envelope's ``signature`` field, which the
hash does not cover. Anyone holding the producer's public key can then tell
a genuine event from one that a broker user recomputed: the hash proves the
content, the signature proves that the producer computed that hash.

What is signed is ``SIGNED_PREFIX`` followed by the hash's 32 bytes, so a
key that one day signs something else (a checkpoint) cannot be made to
vouch for an event by accident. Keys and signatures are base64 text: a key
is its 32 raw bytes (for a private key, its seed), a signature its 64 bytes.
"""

from __future__ import annotations

import binascii
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

SIGNED_PREFIX = b"carecrm event hash v1\x00"
KEY_BYTES = 32
SIGNATURE_BYTES = 64


def _decode(text: str, length: int, what: str) -> bytes:
    """Base64 ``text`` of exactly ``length`` bytes, else ``ValueError`` saying what it must be."""
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError):
        raw = b""
    if len(raw) != length:
        raise ValueError(f"must be {what}: {length} bytes, base64")
    return raw


def _encode(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def private_key_from_text(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_decode(text, KEY_BYTES, "an Ed25519 private key"))


def public_key_from_text(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_decode(text, KEY_BYTES, "an Ed25519 public key"))


def private_key_text(key: Ed25519PrivateKey) -> str:
    return _encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def public_key_text(key: Ed25519PublicKey) -> str:
    return _encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def new_private_key_text() -> str:
    return private_key_text(Ed25519PrivateKey.generate())


class EventSigner:
    """One service's signing key: what its event store signs each appended hash with."""

    def __init__(self, service: str, private_key: Ed25519PrivateKey):
        self.service = service
        self._sign = private_key.sign
        self.public_key = private_key.public_key()

    @classmethod
    def generate(cls, service: str) -> "EventSigner":
        """A signer with a fresh key, known to nobody else (a benchmark's or a test's own store)."""
        return cls(service, Ed25519PrivateKey.generate())

    def sign(self, event_hash: str) -> str:
        """The base64 signature of the hex ``event_hash``."""
        return _encode(self._sign(SIGNED_PREFIX + bytes.fromhex(event_hash)))


class ServiceKeys:
    """Every service's accepted public keys: more than one for a service while its key is rotated."""

    def __init__(self, keys: Mapping[str, Iterable[Ed25519PublicKey]]):
        self._keys = {service: tuple(accepted) for service, accepted in keys.items()}

    @classmethod
    def of(cls, *signers: EventSigner) -> "ServiceKeys":
        """The keys of these signers only (a store that verifies its own log)."""
        return cls({signer.service: [signer.public_key] for signer in signers})

    def accepted(self, service: str) -> tuple[Ed25519PublicKey, ...]:
        return self._keys.get(service, ())

    def signed_by(self, service: str, event_hash: str, signature: str | None) -> bool:
        """Whether one of ``service``'s keys signed ``event_hash`` (False for no or malformed signature)."""
        try:
            raw = _decode(signature, SIGNATURE_BYTES, "a signature")
            message = SIGNED_PREFIX + bytes.fromhex(event_hash)
        except (ValueError, TypeError):
            return False
        for key in self.accepted(service):
            try:
                key.verify(raw, message)
                return True
            except InvalidSignature:
                continue
        return False
