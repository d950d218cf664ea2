"""Ed25519 keys as settings hold them: PEM, or the raw 32 bytes in base64.

The token issuer's keys (``shared.token_keys``) and the services' event
signing keys (``shared.signing_keys``) are read and written the same way;
each names its own setting when a value is wrong. Keys are written as the
raw bytes in base64, the shorter form.
"""

from __future__ import annotations

import binascii
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RAW_KEY_BYTES = 32
KEY_FORMAT = "PEM, or the raw 32 bytes in base64"


def raw_bytes(text: str, length: int) -> bytes:
    """Strict base64 ``text`` of exactly ``length`` bytes; ``ValueError`` otherwise."""
    try:
        raw = binascii.a2b_base64(text.strip().encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as error:
        raise ValueError("not base64") from error
    if len(raw) != length:
        raise ValueError(f"{len(raw)} bytes, not {length}")
    return raw


def base64_text(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def private_key_from_text(text: str) -> Ed25519PrivateKey:
    """The private key in ``text`` (unencrypted PKCS#8 PEM, or raw); ``ValueError`` saying the format otherwise."""
    return _read_key(text, lambda pem: serialization.load_pem_private_key(pem, password=None),
                     Ed25519PrivateKey.from_private_bytes, Ed25519PrivateKey, "private")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """The public key in ``text`` (PEM, or raw); ``ValueError`` saying the format otherwise."""
    return _read_key(text, serialization.load_pem_public_key, Ed25519PublicKey.from_public_bytes, Ed25519PublicKey,
                     "public")


def _read_key(text: str, load_pem: Callable[[bytes], Any], from_raw: Callable[[bytes], Any], kind: type,
              which: str) -> Any:
    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = load_pem(text.strip().encode())
        else:
            key = from_raw(raw_bytes(text, RAW_KEY_BYTES))
    except (ValueError, TypeError, AttributeError):
        key = None
    if not isinstance(key, kind):
        raise ValueError(f"must be an Ed25519 {which} key: {KEY_FORMAT}")
    return key


def private_key_text(key: Ed25519PrivateKey) -> str:
    return base64_text(key.private_bytes_raw())


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64_text(key.public_bytes_raw())


def new_private_key_text() -> str:
    return private_key_text(Ed25519PrivateKey.generate())


def new_key_pair() -> tuple[str, str]:
    """A fresh (private, public) key pair, each as base64 of its raw bytes."""
    private = new_private_key_text()
    return private, public_key_text(private_key_from_text(private).public_key())
