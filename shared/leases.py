"""A named, expiring lock in the service's own database.

Replicas of a service share one database, and some jobs must run once per
service however many replicas run: the relay (two publishers would double
every message) and the timers (two sweeps would race each other). The
holder renews the lease well before it expires; if the holder dies, the
lease lapses after ``ttl_seconds`` and another replica takes it over. No
broker, no extra server: an ``UPDATE`` with a condition is atomic on SQLite
and PostgreSQL.

Expiry times are wall-clock milliseconds of whichever replica wrote them, so
replicas' clocks must agree to well within the TTL.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from shared.eventstore.tables import leases

log = logging.getLogger(__name__)


def owner_id(holder: object) -> str:
    """A lease owner name unique to ``holder`` in this process on this host (and readable in the table)."""
    return f"{socket.gethostname()}:{os.getpid()}:{id(holder)}"


#: A holder renews this often, and a lease lapses this long after its last
#: renewal: a replica killed with -9 is replaced within TTL + RENEW seconds.
RENEW_SECONDS = 0.5
TTL_SECONDS = 1.5


class Lease:
    def __init__(self, engine: Engine, name: str, owner: str, ttl_seconds: float = TTL_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.engine = engine
        self.name = name
        self.owner = owner
        self.ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        self._expires_at: int | None = None  # our own expiry, if our last acquire won

    def acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew it if it is ours.

        The ``UPDATE`` only matches a row we own or one that has expired, so
        of two replicas racing for an expired lease the database lets one
        win (PostgreSQL re-checks the condition after the row lock; SQLite
        has one writer). If there is no row yet, the ``INSERT`` decides: the
        loser of that race hits the primary key and gets ``False``.
        """
        now = self._now_ms()
        expires_at = now + self.ttl_ms
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(leases)
                .where(leases.c.name == self.name,
                       or_(leases.c.owner == self.owner, leases.c.expires_at < now))
                .values(owner=self.owner, expires_at=expires_at)).rowcount
        if not taken:
            try:
                with self.engine.begin() as connection:
                    connection.execute(insert(leases).values(name=self.name, owner=self.owner,
                                                             expires_at=expires_at))
            except IntegrityError:  # held by someone else, or they inserted first
                self._expires_at = None
                return False
        self._expires_at = expires_at
        return True

    def renew_when_due(self, renew_seconds: float = RENEW_SECONDS) -> bool:
        """``acquire``, skipped while our last renewal is younger than ``renew_seconds``.

        A holder working in short steps (the relay's batches) renews as
        often as the keeper would, not with a database write per step.
        """
        if self._expires_at is not None and self._expires_at - self._now_ms() > self.ttl_ms - renew_seconds * 1000:
            return True
        return self.acquire()

    def release(self) -> None:
        """Give the lease up at once so another replica need not wait for it to expire."""
        self._expires_at = None
        with self.engine.begin() as connection:
            connection.execute(delete(leases).where(leases.c.name == self.name,
                                                    leases.c.owner == self.owner))

    @property
    def held(self) -> bool:
        """Whether our last ``acquire`` won and has not expired since (by our clock)."""
        return self._expires_at is not None and self._now_ms() < self._expires_at

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


class LeaseKeeper:
    """Keeps a lease renewed every ``RENEW_SECONDS`` from a greenthread, so ``held`` is always current.

    A job that runs seldom (a timer ticking every minute) cannot renew a
    short lease itself; the keeper does, between and during its runs, so a
    replica that dies hands the job over within ``TTL_SECONDS +
    RENEW_SECONDS`` and a long run is never overlapped by another holder.
    """

    def __init__(self, lease: Lease, renew_seconds: float = RENEW_SECONDS):
        self.lease = lease
        self.renew_seconds = renew_seconds

    @property
    def held(self) -> bool:
        return self.lease.held

    def keep(self, stop) -> None:
        """Renew until ``stop`` (a ``threading.Event``) is set; database errors only skip a renewal."""
        while not stop.is_set():
            try:
                self.lease.acquire()
            except SQLAlchemyError:
                log.warning("could not renew the lease %s", self.lease.name, exc_info=True)
            stop.wait(self.renew_seconds)

    def release(self) -> None:
        """Hand the lease over at once (the replica is stopping)."""
        try:
            self.lease.release()
        except SQLAlchemyError:
            log.warning("could not release the lease %s; it lapses by itself", self.lease.name, exc_info=True)
