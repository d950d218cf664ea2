"""The ``crm`` command line: its commands, run in-process with a clean environment.

No broker is needed: the broker checks here point at a closed local port.
"""

import base64

CLOSED_BROKER = "amqp://guest:guest@127.0.0.1:1/"
SECRET = base64.b64encode(b"s" * 32).decode()
MASTER_KEY = base64.b64encode(b"m" * 32).decode()
