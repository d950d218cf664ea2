"""The ``crm`` command line: its commands, run in-process with a clean environment.

No broker is needed: the broker checks here point at a closed local port.
"""

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CLOSED_BROKER = "amqp://guest:guest@127.0.0.1:1/"
ISSUER_KEY = Ed25519PrivateKey.from_private_bytes(b"i" * 32)
PRIVATE_KEY = base64.b64encode(ISSUER_KEY.private_bytes_raw()).decode()
PUBLIC_KEY = base64.b64encode(ISSUER_KEY.public_key().public_bytes_raw()).decode()
MASTER_KEY = base64.b64encode(b"m" * 32).decode()
