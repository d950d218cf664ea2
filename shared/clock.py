"""The time a service's workers decide at, as a nameko dependency.

Decisions record the moment they were made, so a worker never reads the
system time itself: it asks the service's ``Clock``. Production runs on the
wall clock; a test declares ``Clock(now=...)`` with a clock it moves, and the
whole service follows. A naive time has no defined instant (its meaning
depends on the machine's zone), so the clock refuses one rather than let it
into an event.

    class CallbacksService:
        clock = Clock()

        @rpc
        def schedule(self, ...):
            now = self.clock.now()
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from nameko.extensions import DependencyProvider


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def aware(moment: datetime, what: str) -> datetime:
    """``moment`` itself if it names an instant (carries a UTC offset); ``ValueError`` if naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment!r}")
    return moment


class Clock(DependencyProvider):
    """Gives workers ``now()`` from ``now`` (the wall clock unless a test passes its own)."""

    def __init__(self, now: Callable[[], datetime] = wall_clock):
        self._read = now

    def get_dependency(self, worker_ctx) -> "Clock":
        return self

    def now(self) -> datetime:
        return aware(self._read(), "the clock's time")


def iso(moment: datetime) -> str:
    """UTC text with microseconds and ``Z``, the log's own format (sorts as text)."""
    if moment.tzinfo is None:
        raise ValueError(f"time must be timezone-aware, got {moment!r}")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: str | None) -> datetime | None:
    """A time of the log's text (``iso``) back as an aware ``datetime``; ``None`` stays ``None``."""
    return None if text is None else datetime.fromisoformat(text)


def container_now(container) -> datetime:
    """The time of ``container``'s ``Clock`` (the wall clock if it has none), for code outside a worker.

    A reaction's effect runs on the consumer runner, not in a worker, but must
    decide at the same time as the service's commands (a test's moved clock).
    """
    clocks = [dependency for dependency in container.dependencies if isinstance(dependency, Clock)]
    return clocks[0].now() if clocks else wall_clock()
