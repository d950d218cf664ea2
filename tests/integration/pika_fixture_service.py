"""A real nameko service for test_pika_client.py, run with ``nameko run``.

Its name comes from ``PIKA_FIXTURE_SERVICE`` so each test run gets its own
queues and exchanges on the shared broker.
"""

from __future__ import annotations

import os
from typing import Any

from nameko.events import EventDispatcher
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc


class Conflict(Exception):
    """Named like shared.errors.Conflict: callers see only the class name."""


class Authorization(DependencyProvider):
    """Injects the ``authorization`` context value (header nameko.authorization)."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return worker_ctx.data.get("authorization")


class PikaFixtureService:
    name = os.environ.get("PIKA_FIXTURE_SERVICE", "pika_fixture")

    authorization = Authorization()
    dispatch = EventDispatcher()

    @rpc
    def echo(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs, "authorization": self.authorization}

    @rpc
    def conflict(self, message: str) -> None:
        raise Conflict(message)

    @rpc
    def emit(self, event_type: str, payload: Any) -> bool:
        self.dispatch(event_type, payload)
        return True
