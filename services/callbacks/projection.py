"""The read models of the callbacks service: the callback list, the attempts, and complaints seen.

``callback_list`` holds one row per callback (status, due time, priority,
assignee): what ``list_due`` reads. ``callback_attempts`` holds one row per
call (outcome, satisfaction, 规范): what ``kpis`` counts. Neither holds
personal data: notes and issues stay sealed in the log.

``callback_complaints`` follows the complaints' log: which customer each
complaint is about (the satisfaction callback after ``ComplaintResolved``
needs it) and, for a complaint filed for an issue found during a callback,
the link back to that callback and how far the complaint got, which ``get``
shows on the callback.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, bindparam, insert, update
from sqlalchemy.engine import Connection

from services.callbacks.domain import PRIORITY_RANK, status_after
from shared.consumers import Projection, handles
from shared.eventstore.envelope import Envelope

metadata = MetaData()

callback_list = Table(
    "callback_list", metadata,
    Column("callback_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("due_at", String(32), nullable=False, index=True),
    Column("priority", String(16), nullable=False),
    Column("priority_rank", Integer, nullable=False),
    Column("assignee", String(100), index=True),
    Column("attempts", Integer, nullable=False),
    Column("origin", String(32), nullable=False),
    Column("complaint_id", String(64)),
    Column("scheduled_at", String(32), nullable=False),
    Column("closed_at", String(32)),
    Column("close_reason", String(32)),
    Column("version", Integer, nullable=False),
)

callback_attempts = Table(
    "callback_attempts", metadata,
    Column("callback_id", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("agent", String(100), nullable=False),
    Column("attempted_at", String(32), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("satisfaction", Integer),
    Column("script_followed", Boolean),
)

callback_complaints = Table(
    "callback_complaints", metadata,
    Column("complaint_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("callback_id", String(64), index=True),  # set for a complaint filed for a callback's issue
    Column("status", String(24), nullable=False),
    Column("filed_at", String(32), nullable=False),
    Column("resolved_at", String(32)),
    Column("closed_at", String(32)),
)

# Built once (an attempt is the most frequent event): the columns set are the parameters given.
INSERT_ATTEMPT = insert(callback_attempts)
UPDATE_CALLBACK = update(callback_list).where(callback_list.c.callback_id == bindparam("of_callback"))


class CallbackList(Projection):
    name = "callbacks.list"
    metadata = metadata

    @handles("callbacks", "CallbackScheduled")
    def scheduled(self, connection: Connection, envelope: Envelope) -> None:
        data = envelope.data
        connection.execute(insert(callback_list).values(
            callback_id=data["callback_id"], customer_id=data["customer_id"], kind=data["kind"], status="scheduled",
            due_at=data["due_at"], priority=data["priority"], priority_rank=PRIORITY_RANK[data["priority"]],
            assignee=data["assignee"], attempts=0, origin=data["origin"], complaint_id=data["complaint_id"],
            scheduled_at=envelope.occurred_at, version=envelope.stream_version))

    @handles("callbacks", "CallbackAttempted", "CallbackReturnedToPool", "CallbackCompleted", "CallbackFailed",
             "CallbackCancelled", "CallbackIssueRaised")
    def changed(self, connection: Connection, envelope: Envelope) -> None:
        data = envelope.data
        values = {"of_callback": data["callback_id"], "version": envelope.stream_version}
        if envelope.type == "CallbackAttempted":
            values["attempts"] = data["attempt"]
            if data["next_due_at"]:
                values["due_at"] = data["next_due_at"]
            connection.execute(INSERT_ATTEMPT, {
                "callback_id": data["callback_id"], "attempt": data["attempt"], "kind": data["kind"],
                "agent": data["agent"], "attempted_at": envelope.occurred_at, "outcome": data["outcome"],
                "satisfaction": data["satisfaction"], "script_followed": data["script_followed"]})
        elif envelope.type == "CallbackReturnedToPool":
            values["assignee"] = None
        elif envelope.type in ("CallbackCompleted", "CallbackFailed", "CallbackCancelled"):
            values.update(status=status_after("scheduled", envelope.type), closed_at=envelope.occurred_at,
                          close_reason=data.get("reason") or "reached")
        connection.execute(UPDATE_CALLBACK, values)

    @handles("complaints", "ComplaintFiled")
    def complaint_filed(self, connection: Connection, envelope: Envelope) -> None:
        data = envelope.data
        connection.execute(insert(callback_complaints).values(
            complaint_id=data["complaint_id"], customer_id=data["customer_id"], callback_id=data.get("callback_id"),
            status="open", filed_at=envelope.occurred_at))

    @handles("complaints", "ComplaintResolved", "ComplaintReopened", "ComplaintClosed")
    def complaint_moved(self, connection: Connection, envelope: Envelope) -> None:
        values = {"ComplaintResolved": {"status": "resolved", "resolved_at": envelope.occurred_at},
                  "ComplaintReopened": {"status": "reopened", "resolved_at": None},
                  "ComplaintClosed": {"status": "closed", "closed_at": envelope.occurred_at}}[envelope.type]
        connection.execute(update(callback_complaints)
                           .where(callback_complaints.c.complaint_id == envelope.data["complaint_id"])
                           .values(**values))
