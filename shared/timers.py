"""A nameko timer that fires on one replica of a service at a time.

Every replica of a service runs the same timers, but a sweep or a daily
send must happen once per service, not once per replica. ``leased_timer``
is nameko's ``@timer`` guarded by a ``Lease`` in the service's own database
(the engine of its ``EventLog``): a ``LeaseKeeper`` renews the short lease
(or tries to take it) twice a second, whatever the timer's interval, and at
each tick only the holder runs the method. A stopping replica releases the
lease once its last run has finished, and a replica killed outright loses it
within two seconds, so another takes over at its next tick.

    class CampaignsService:
        log = EventLog(...)

        @leased_timer("campaigns.daily-send", interval=300, config_key=("CAMPAIGNS", "send_timer_seconds"))
        def send_due_greetings(self):
            ...

The keeper renews during a run too, so a live holder's long run is never
overlapped; a holder that stalls for longer than the lease (a frozen
process) may be, so the method must stay safe to run twice at once, e.g. by
appending with an expected stream version.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from nameko.timer import Timer
from sqlalchemy.engine import Engine

from shared.errors import ValidationError
from shared.event_log import EventLog
from shared.leases import Lease, LeaseKeeper, owner_id



class LeasedTimer(Timer):
    """``@timer`` on the replica holding the lease ``lease_name``; ``config_key`` may override ``interval``.

    ``config_key`` is a path into the nameko config, e.g. ``("COMPLAINTS", "sla_timer_seconds")``;
    if that setting is present it must be a positive number of seconds.
    """

    def __init__(self, lease_name: str, interval: float, config_key: Sequence[str] = (), **kwargs: Any):
        self.lease_name = lease_name
        self.config_key = tuple(config_key)
        self.keeper: LeaseKeeper | None = None
        self._stop_keeping = threading.Event()
        super().__init__(interval, **kwargs)

    def setup(self) -> None:
        configured = _setting(self.container.config, self.config_key) if self.config_key else None
        if configured is not None:
            self.interval = _positive_seconds(configured, ".".join(self.config_key))

    def start(self) -> None:
        self.keeper = LeaseKeeper(Lease(self._service_engine(), self.lease_name, owner_id(self)))
        self._stop_keeping.clear()
        self.container.spawn_managed_thread(lambda: self.keeper.keep(self._stop_keeping))
        super().start()

    def stop(self) -> None:
        super().stop()  # returns once the tick in progress, if any, has finished
        self._stop_keeping.set()
        self.keeper.release()

    def kill(self) -> None:
        self._stop_keeping.set()  # a killed replica's lease lapses by itself
        super().kill()

    def handle_timer_tick(self) -> None:
        if self.keeper.held:
            super().handle_timer_tick()
        else:
            self.worker_complete.send()  # no worker this tick: let the loop wait for the next one

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
