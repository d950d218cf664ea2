"""Domain errors that cross the RPC boundary.

nameko reports an exception raised in a worker as ``RemoteError`` whose
``exc_type`` is the exception's class name, so these class names *are* the
error contract (docs/architecture.md, "Errors"): callers branch on them,
never on messages.
"""

from __future__ import annotations

from typing import Any


class CrmError(Exception):
    """Base of every error a caller is expected to handle."""


class ValidationError(CrmError):
    """Input does not match its schema; ``fields`` maps field names to messages."""

    def __init__(self, fields: dict[str, Any] | str):
        if isinstance(fields, str):
            fields = {"_schema": [fields]}
        self.fields = fields
        super().__init__(f"invalid input: {fields}")


class NotFound(CrmError):
    """The addressed aggregate does not exist (or no longer holds data)."""


class Conflict(CrmError):
    """Stale ``expected_version`` or a transition the current state forbids."""


class Forbidden(CrmError):
    """The caller's role may not call this method."""


class Unauthenticated(CrmError):
    """No token, or a token that is forged, malformed or expired."""


class DeadlineExceeded(CrmError):
    """The request arrived after the moment its caller stopped waiting; it was not run."""
