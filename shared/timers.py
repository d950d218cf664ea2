"""A nameko timer that fires on one replica of a service at a time.

Every replica of a service runs the same timers, but a sweep or a daily
send must happen once per service, not once per replica. ``leased_timer``
is nameko's ``@timer`` guarded by a ``Lease`` in the service's own database
(the engine of its ``EventLog``): at each tick the replica renews the lease
or tries to take it, and only the holder runs the method. The lease lives a
few ticks, so a live holder keeps it from tick to tick; a stopping replica
releases it once its last run has finished, so another takes over at its
next tick, and a dead one loses it when it lapses.

    class CampaignsService:
        log = EventLog(...)

        @leased_timer("campaigns.daily-send", interval=300, config_key=("CAMPAIGNS", "send_timer_seconds"))
        def send_due_greetings(self):
            ...

A run that outlasts the lease (several ticks) may overlap the next holder's,
so the method must stay safe to run twice at once, e.g. by appending with
an expected stream version.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from nameko.timer import Timer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from shared.errors import ValidationError
from shared.event_log import EventLog
from shared.leases import Lease, owner_id

log = logging.getLogger(__name__)

LEASE_TICKS = 3  # a lease outlives this many ticks, so one slow tick does not hand it over
MIN_LEASE_SECONDS = 10.0  # and never less: a fast timer would otherwise lose it to any pause


class LeasedTimer(Timer):
    """``@timer`` on the replica holding the lease ``lease_name``; ``config_key`` may override ``interval``.

    ``config_key`` is a path into the nameko config, e.g. ``("COMPLAINTS", "sla_timer_seconds")``;
    if that setting is present it must be a positive number of seconds.
    """

    def __init__(self, lease_name: str, interval: float, config_key: Sequence[str] = (), **kwargs: Any):
        self.lease_name = lease_name
        self.config_key = tuple(config_key)
        self.lease: Lease | None = None
        super().__init__(interval, **kwargs)

    def setup(self) -> None:
        configured = _setting(self.container.config, self.config_key) if self.config_key else None
        if configured is not None:
            self.interval = _positive_seconds(configured, ".".join(self.config_key))

    def start(self) -> None:
        ttl_seconds = max(LEASE_TICKS * self.interval, MIN_LEASE_SECONDS)
        self.lease = Lease(self._service_engine(), self.lease_name, owner_id(self), ttl_seconds=ttl_seconds)
        super().start()

    def stop(self) -> None:
        super().stop()  # returns once the tick in progress, if any, has finished
        try:
            self.lease.release()
        except SQLAlchemyError:
            log.warning("could not release the lease %s; it lapses by itself", self.lease_name, exc_info=True)

    def handle_timer_tick(self) -> None:
        if self._holds_lease():
            super().handle_timer_tick()
        else:
            self.worker_complete.send()  # no worker this tick: let the loop wait for the next one

    def _holds_lease(self) -> bool:
        try:
            return self.lease.acquire()
        except SQLAlchemyError:  # the database is away: skip this tick, try again at the next
            log.warning("could not renew the lease %s; skipping a tick", self.lease_name, exc_info=True)
            return False

    def _service_engine(self) -> Engine:
        event_logs = [dependency for dependency in self.container.dependencies if isinstance(dependency, EventLog)]
        if not event_logs:
            raise TypeError(f"{self.container.service_name} needs an EventLog dependency: the leased timer "
                            f"{self.lease_name!r} keeps its lease in the service's database")
        return event_logs[0].store.engine


leased_timer = LeasedTimer.decorator


def _setting(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested config mappings, or None if any step is missing."""
    value: Any = config
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def _positive_seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValidationError({name: [f"must be a positive number of seconds, got {value!r}"]})
    return float(value)
