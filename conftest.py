"""Root conftest: eventlet must patch sockets before anything imports them.

nameko's pytest plugin no longer does this; unpatched, nameko's consumers
and the psycogreen-cooperative PostgreSQL driver would block the process.
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()
