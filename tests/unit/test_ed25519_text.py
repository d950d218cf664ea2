"""Ed25519 keys as text: raw base64 or PEM in, raw base64 out."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from shared.ed25519_text import (new_key_pair, private_key_from_text, private_key_text, public_key_from_text,
                                 public_key_text, raw_bytes)


def test_a_key_pair_round_trips_through_its_text():
    private, public = new_key_pair()
    assert private_key_text(private_key_from_text(private)) == private
    assert public_key_text(private_key_from_text(private).public_key()) == public
    assert public_key_text(public_key_from_text(public)) == public


def test_pem_keys_read_as_the_same_keys():
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    assert private_key_text(private_key_from_text(private_pem)) == private_key_text(key)
    assert public_key_text(public_key_from_text(public_pem)) == public_key_text(key.public_key())


@pytest.mark.parametrize("text", ["", "not base64!", "c2hvcnQ=", 42, None, "-----BEGIN PRIVATE KEY-----\nx"])
def test_a_malformed_key_is_refused_saying_what_a_key_is(text):
    with pytest.raises(ValueError, match="must be an Ed25519 private key: PEM, or the raw 32 bytes in base64"):
        private_key_from_text(text)
    with pytest.raises(ValueError, match="must be an Ed25519 public key"):
        public_key_from_text(text)


def test_raw_bytes_are_strict_base64_of_the_exact_length():
    assert raw_bytes("AAAA", 3) == b"\0\0\0"
    for wrong in ("AAAA", "AA AA", "AAA"):
        with pytest.raises(ValueError):
            raw_bytes(wrong, 4)
