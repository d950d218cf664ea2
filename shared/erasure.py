"""What every service does when a customer is erased: destroy its own data key, and leave no copy behind.

Each service seals the personal data it writes under its own per-customer
key (``shared.crypto``). ``CustomerErased`` from the customers service is
the one signal. The reaction shreds the key and deletes the dead letters
about the customer in the same transaction that records the event as
applied, so it happens exactly once, and a rebuild never runs it again. It
is never parked: if the key table cannot be written, the reaction retries
with back-off until it can.

Deleted rows still leave bytes in the database files, so once every
consumer that follows the customers' log has applied the erasure, outside
their transactions, ``ScrubAfterErasures`` scrubs the files
(``shared.file_scrub``): the tables projections declare as
``personal_data``, the data keys and the dead letters. At start-up it
scrubs first if an erasure's scrub was cut short (a crash).
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.consumer_runner import ConsumerRunner
from shared.consumers import Reaction, handles
from shared.dead_letters import purge_letters_of
from shared.eventstore.envelope import Envelope
from shared.eventstore.tables import checkpoints, data_keys, dead_letters
from shared.file_scrub import scrub

ERASURE_UPSTREAM = "customers"
ERASURE_EVENT = "CustomerErased"
SCRUB_CHECKPOINT = "erasure-scrub"


class DestroyDataKeyOnErasure(Reaction):
    """Crypto-shreds the customer's key of this service (every text sealed under it becomes unreadable)
    and deletes the dead letters about them."""

    name = "data-keys.erasure"

    def __init__(self, keys):
        super().__init__(keys)
        self.erased_through = 0  # position of the latest erasure applied by this process

    @handles(ERASURE_UPSTREAM, ERASURE_EVENT)
    def destroy(self, connection: Connection, envelope: Envelope) -> None:
        customer_id = envelope.data["customer_id"]
        self.keys.destroy(customer_id, connection)
        purge_letters_of(connection, customer_id)
        self.erased_through = max(self.erased_through, envelope.position)


class ScrubAfterErasures:
    """Scrubs the database files once every consumer of the customers' log is past the latest erasure.

    The row ``erasure-scrub`` in ``checkpoints`` counts the destroyed keys
    the files were last scrubbed after; at start-up, more destroyed keys
    than that means a scrub was cut short, and it runs first thing.
    """

    def __init__(self, engine: Engine, runners: Sequence[ConsumerRunner]):
        self.engine = engine
        self.reactions = [runner.consumer for runner in runners
                          if isinstance(runner.consumer, DestroyDataKeyOnErasure)]
        self.followers = [runner for runner in runners if ERASURE_UPSTREAM in runner.consumer.upstreams]
        self.tables = [data_keys, dead_letters,
                       *(table for runner in runners for table in getattr(runner.consumer, "personal_data", ()))]
        self.scrubbed_through: int | None = None  # erasure position scrubbed after; None until the first call

    def run_when_settled(self) -> None:
        """Scrub if an erasure was applied since the last scrub and every follower has applied it."""
        if not self.reactions:
            return
        if self.scrubbed_through is None:  # below any position if a scrub is owed from before the start
            self.scrubbed_through = -1 if self._destroyed_keys() > self._keys_scrubbed() else 0
        due = max(reaction.erased_through for reaction in self.reactions)
        if due <= self.scrubbed_through:
            return
        if any(runner.position(ERASURE_UPSTREAM) < due for runner in self.followers):
            return
        destroyed = self._destroyed_keys()
        if scrub(self.engine, self.tables):
            self.scrubbed_through = due
            self._record_scrubbed(destroyed)

    def _destroyed_keys(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(data_keys)
                                      .where(data_keys.c.destroyed_at.is_not(None))).scalar_one()

    def _keys_scrubbed(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(checkpoints.c.position)
                                      .where(checkpoints.c.name == SCRUB_CHECKPOINT)).scalar() or 0

    def _record_scrubbed(self, destroyed: int) -> None:
        """Note the count; a replica writing an older one at once only makes the next start scrub again."""
        try:
            with self.engine.begin() as connection:
                moved = connection.execute(update(checkpoints).where(checkpoints.c.name == SCRUB_CHECKPOINT)
                                           .values(position=destroyed))
                if moved.rowcount == 0:
                    connection.execute(insert(checkpoints).values(name=SCRUB_CHECKPOINT, position=destroyed))
        except IntegrityError:  # another replica inserted the row meanwhile
            pass
