"""The complaint list: the read model behind ``list`` and ``stats``.

One row per complaint, kept in step with the complaints log. The summary is
held decrypted (it is what a list shows); every other text stays in the log,
sealed. The list also follows the customers' log for one event:
``CustomerErased`` drops the summaries of that customer's complaints (the
erasure reaction destroys the key, so a rebuild cannot bring them back).
Handlers are chosen by producer and event type, so a stray event of one log
can never be applied as the other's.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.engine import Connection

from contracts.complaints import EVENT_SCHEMAS
from services.complaints.domain import status_after
from shared.consumers import Projection, handles
from shared.eventstore.envelope import Envelope

metadata = MetaData()

complaint_list = Table(
    "complaint_list", metadata,
    Column("complaint_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("channel", String(16), nullable=False),
    Column("category", String(32), nullable=False, index=True),
    Column("urgency", String(16), nullable=False),
    Column("priority", String(16), nullable=False, index=True),
    Column("status", String(24), nullable=False, index=True),
    Column("escalation_level", Integer, nullable=False),
    Column("assignee", String(100), index=True),
    Column("summary", String(200)),
    Column("related_complaint_id", String(64)),
    Column("filed_at", String(32), nullable=False, index=True),
    Column("first_replied_at", String(32)),
    Column("resolved_at", String(32)),
    Column("first_resolved_at", String(32)),
    Column("closed_at", String(32)),
    Column("reopen_count", Integer, nullable=False),
    Column("breached", Boolean, nullable=False, index=True),
    Column("breach_count", Integer, nullable=False),
    Column("satisfied", Boolean),
    Column("score", Integer),
    Column("pii_erased", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

_REPLIES = ("ComplaintResponded", "ComplaintInfoRequested", "ComplaintResolved")


_CHANGES = tuple(event_type for event_type in EVENT_SCHEMAS if event_type != "ComplaintFiled")


class ComplaintList(Projection):
    name = "complaints.list"
    metadata = metadata
    never_parked = frozenset({"CustomerErased"})
    personal_data = (complaint_list,)

    @handles("customers", "CustomerErased")
    def customer_erased(self, connection: Connection, envelope: Envelope) -> None:
        connection.execute(update(complaint_list)
                           .where(complaint_list.c.customer_id == envelope.data["customer_id"])
                           .values(summary=None, pii_erased=True))

    @handles("complaints", "ComplaintFiled")
    def filed(self, connection: Connection, envelope: Envelope) -> None:
        data = envelope.data
        summary = self.keys.opening_key(data["customer_id"]).open(data["summary"], envelope.stream_id, "summary")
        connection.execute(insert(complaint_list).values(
            complaint_id=data["complaint_id"], customer_id=data["customer_id"], channel=data["channel"],
            category=data["category"], urgency=data["urgency"], priority=data["priority"], status="open",
            escalation_level=0, summary=summary, related_complaint_id=data["related_complaint_id"],
            filed_at=envelope.occurred_at, reopen_count=0, breached=False, breach_count=0,
            pii_erased=summary is None, version=envelope.stream_version, updated_at=envelope.recorded_at))

    @handles("complaints", *_CHANGES)
    def changed(self, connection: Connection, envelope: Envelope) -> None:
        data, at, table = envelope.data, envelope.occurred_at, complaint_list
        where = table.c.complaint_id == data["complaint_id"]
        status = connection.execute(select(table.c.status).where(where)).scalar_one()
        values = {"status": status_after(status, envelope.type), "version": envelope.stream_version,
                  "updated_at": envelope.recorded_at}
        if envelope.type in _REPLIES:
            values["first_replied_at"] = func.coalesce(table.c.first_replied_at, at)
        if envelope.type == "ComplaintClassified":
            values.update(category=data["category"], priority=data["priority"])
        elif envelope.type == "ComplaintAssigned":
            values["assignee"] = data["agent"]
        elif envelope.type == "ComplaintEscalated":
            values["escalation_level"] = data["level"]
        elif envelope.type == "ComplaintResolved":
            values.update(resolved_at=at, first_resolved_at=func.coalesce(table.c.first_resolved_at, at))
        elif envelope.type == "ComplaintConfirmed":
            values["satisfied"] = data["satisfied"]
            if data["score"] is not None:
                values["score"] = data["score"]
        elif envelope.type == "ComplaintReopened":
            values.update(resolved_at=None, reopen_count=data["reopen_count"])
        elif envelope.type == "ComplaintClosed":
            values["closed_at"] = at
        elif envelope.type == "ComplaintSlaBreached":
            values.update(breached=True, breach_count=table.c.breach_count + 1)
        connection.execute(update(table).where(where).values(**values))
