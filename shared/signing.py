"""Who produced an event: Ed25519 signatures over event hashes, and the check every consumer runs.

A service signs the ``hash`` of each event it appends with its own private
key; the signature travels in the envelope's ``signature`` field, which the
hash does not cover. Anyone holding the producer's public key can then tell
a genuine event from one that a broker user recomputed: the hash proves the
content, the signature proves that the producer computed that hash.

What is signed is ``SIGNED_PREFIX`` followed by the hash's 32 bytes, so a
key that one day signs something else (a checkpoint) cannot be made to
vouch for an event by accident. A signature is base64 text of its 64 bytes;
keys are text as ``shared.ed25519_text`` reads and writes them.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.ed25519_text import base64_text, raw_bytes
from shared.eventstore.envelope import Envelope, content_hash

SIGNED_PREFIX = b"carecrm event hash v1\x00"
SIGNATURE_BYTES = 64


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
        return base64_text(self._sign(SIGNED_PREFIX + bytes.fromhex(event_hash)))

    def sign_text(self, text: str) -> bytes:
        """The raw signature of a UTF-8 text such as a signed note (the audit's checkpoints and exports).

        Such a text is never ``SIGNED_PREFIX`` plus 32 bytes, so it can never
        pass for an event's signature, nor an event's for it.
        """
        message = text.encode()
        if message.startswith(SIGNED_PREFIX):
            raise ValueError("a text to sign must not look like an event hash")
        return self._sign(message)


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
            raw = raw_bytes(signature, SIGNATURE_BYTES)
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


class EventCheck:
    """Whether an event received from ``upstream`` is what its producer wrote.

    A consumer runs it on every event of another service, delivered by the
    broker or pulled with ``events_since``, before anything else: the hash is
    recomputed from the content and the signature is verified with the
    producer's public keys. Events of ``own_service`` are not checked: they
    come from the service's own database, which the service wrote itself and
    which a forger able to write could rewrite the projections in as well.
    """

    def __init__(self, keys: ServiceKeys, own_service: str | None = None):
        self.keys = keys
        self.own_service = own_service

    def refusal(self, upstream: str, envelope: Envelope) -> str | None:
        """Why the event must not be applied, or ``None`` if it is genuine."""
        if envelope.service != upstream:
            return f"a {envelope.service} event delivered as {upstream}'s"
        if upstream == self.own_service:
            return None
        if not envelope.signature:
            return "no signature"
        if not self.keys.accepted(upstream):
            return f"no public key for {upstream}"
        try:
            recomputed = content_hash(envelope)
        except (TypeError, ValueError) as error:
            return f"malformed envelope: {error}"
        if recomputed != envelope.hash:
            return "hash does not match the event's content"
        if not self.keys.signed_by(upstream, envelope.hash, envelope.signature):
            return "bad signature"
        return None

    def vouched(self, upstream: str, batch: Sequence[Envelope]) -> bool:
        """Whether every event of ``batch`` is genuine, at the cost of one signature check.

        Each hash is recomputed and must be the next event's ``prev_hash``;
        a good signature on the last event then vouches for all of them, as
        its hash covers the hash before it, and so on back. False does not
        say which event is bad: check them one by one.
        """
        if not batch or any(envelope.service != upstream for envelope in batch):
            return False
        if upstream == self.own_service:
            return True
        if any(later.prev_hash != earlier.hash for earlier, later in itertools.pairwise(batch)):
            return False
        try:
            if any(content_hash(envelope) != envelope.hash for envelope in batch):
                return False
        except (TypeError, ValueError):
            return False
        return self.keys.signed_by(upstream, batch[-1].hash, batch[-1].signature)
