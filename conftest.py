"""Root conftest: eventlet must patch sockets before anything imports them.

nameko's pytest plugin no longer does this, and under an unpatched process
nameko's consumers and the psycogreen-cooperative driver would misbehave.
"""

import eventlet

eventlet.monkey_patch()
