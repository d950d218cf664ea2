"""The dead-letter queue of poison events, kept in each service's own database.

A consumer that fails an event ``max_attempts`` times parks it here with the
error and goes on, so one bad event never blocks a stream. An operator fixes
the cause and retries it (``crm dlq list|retry``); a retried letter is kept,
marked with ``retried_at``, as a record of what happened. The letters of an
erased customer are deleted with their key (``purge_letters_of``).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from shared.canonical import canonical_json
from shared.error_text import describe
from shared.errors import Conflict, NotFound, ValidationError
from shared.eventstore.envelope import Envelope, utc_now_iso
from shared.eventstore.tables import dead_letters


class ApplyUntracked(Protocol):
    """How ``retry`` applies a letter: a consumer runner's ``apply_untracked``.

    A protocol rather than the runner itself, so this module, which the
    runner uses to park events, does not depend on the runner in turn.
    """

    def __call__(self, envelope: Mapping[str, Any], *, also: Callable[[Connection], None]) -> None: ...


class DeadLetters:
    """The ``dead_letters`` table of one service database."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, consumer: str, upstream: str, envelope: Envelope, error: str, attempts: int,
               *, connection: Connection | None = None) -> int:
        """Park ``envelope``; pass ``connection`` to commit with the caller's tracking update."""
        row = {"consumer": consumer, "upstream": upstream, "position": envelope.position,
               "event_id": envelope.event_id, "type": envelope.type,
               "envelope": canonical_json(envelope.to_dict()), "error": error,
               "attempts": attempts, "failed_at": utc_now_iso()}
        if connection is not None:
            return connection.execute(insert(dead_letters), row).inserted_primary_key[0]
        with self.engine.begin() as own:
            return own.execute(insert(dead_letters), row).inserted_primary_key[0]

    def list(self, consumer: str | None = None, include_retried: bool = False) -> list[dict[str, Any]]:
        """Letters oldest first, each with its envelope as a dict."""
        query = select(dead_letters).order_by(dead_letters.c.id)
        if consumer is not None:
            query = query.where(dead_letters.c.consumer == consumer)
        if not include_retried:
            query = query.where(dead_letters.c.retried_at.is_(None))
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [{**row, "envelope": json.loads(row["envelope"])} for row in rows]

    def count(self, consumer: str | None = None) -> int:
        """Letters still waiting for a retry (the DLQ size ``health()`` reports)."""
        query = select(func.count()).select_from(dead_letters).where(dead_letters.c.retried_at.is_(None))
        if consumer is not None:
            query = query.where(dead_letters.c.consumer == consumer)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one()

    def retry(self, dead_letter_id: int, consumer: str, apply_untracked: ApplyUntracked) -> str:
        """Apply the parked event once more for ``consumer``: ``"applied"`` or ``"failed"``.

        ``apply_untracked`` (the consumer's runner) applies it without the gap
        and duplicate checks (its tracking already moved past it), and
        ``retried_at`` is set in the same transaction, so a letter is applied
        at most once even when two operators retry it together. On failure the
        letter stays, with the new error and one more attempt counted.
        """
        letter = self.get(dead_letter_id)
        if letter["consumer"] != consumer:
            raise ValidationError({"dead_letter_id": [
                f"dead letter {dead_letter_id} belongs to {letter['consumer']}, not {consumer}"]})
        if letter["retried_at"] is not None:
            raise Conflict(f"dead letter {dead_letter_id} was already retried at {letter['retried_at']}")

        def mark_retried(connection: Connection) -> None:
            marked = connection.execute(update(dead_letters)
                                        .where(dead_letters.c.id == dead_letter_id,
                                               dead_letters.c.retried_at.is_(None))
                                        .values(retried_at=utc_now_iso()))
            if marked.rowcount != 1:  # raising rolls the apply back
                raise Conflict(f"dead letter {dead_letter_id} was retried by someone else meanwhile")

        try:
            apply_untracked(letter["envelope"], also=mark_retried)
        except Conflict:
            raise
        except Exception as error:  # noqa: BLE001 - any failure is the letter's new error
            with self.engine.begin() as connection:
                connection.execute(update(dead_letters).where(dead_letters.c.id == dead_letter_id)
                                   .values(error=describe(error), attempts=dead_letters.c.attempts + 1,
                                           failed_at=utc_now_iso()))
            return "failed"
        return "applied"

    def get(self, dead_letter_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(select(dead_letters)
                                     .where(dead_letters.c.id == dead_letter_id)).mappings().first()
        if row is None:
            raise NotFound(f"no dead letter {dead_letter_id}; `crm dlq list` shows the waiting ones")
        return {**row, "envelope": json.loads(row["envelope"])}


def purge_letters_of(connection: Connection, customer_id: str) -> int:
    """Delete every letter whose event names ``customer_id``, in the caller's transaction; how many went.

    Envelopes are stored as canonical JSON, so an event about the customer
    holds exactly ``"customer_id":"<id>"``.
    """
    named = dead_letters.c.envelope.contains(canonical_json({"customer_id": customer_id})[1:-1], autoescape=True)
    return connection.execute(delete(dead_letters).where(named)).rowcount
