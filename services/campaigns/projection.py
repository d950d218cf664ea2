"""The campaigns service's read models: the customers it may greet, and its campaigns.

``CareDirectory`` is the service's own projection of the customers' events:
status, tier, tags, locale, time zone, birthday calendar and whether the
customer consents to care messages. It holds no personal data (names,
contacts and birthdays are fetched at send time with
``customers.reveal_contacts`` and never stored), so a run decides consent
and erasure from it even while the customers service is busy.
``CampaignList`` follows the service's own campaign events for ``list``.
"""

from __future__ import annotations

import json

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text, insert, update
from sqlalchemy.engine import Connection

from shared.consumers import Projection, handles
from shared.eventstore.envelope import Envelope

directory_metadata = MetaData()  # one per projection: a rebuild replaces every table of its metadata
list_metadata = MetaData()

care_directory = Table(
    "campaign_customers", directory_metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # active, erased
    Column("tier", String(32), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("birthday_calendar", String(10), nullable=False),
    Column("care_consent", Boolean, nullable=False),
    Column("tags", Text, nullable=False),  # JSON list
)

campaign_list = Table(
    "campaign_list", list_metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("holiday", String(32)),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

CARE = "care_messages"
_PLAIN_CHANGES = ("locale", "timezone", "birthday_calendar")


class CareDirectory(Projection):
    name = "campaigns.customers"
    metadata = directory_metadata
    never_parked = frozenset({"CustomerErased", "ConsentWithdrawn"})

    @handles("customers", "CustomerRegistered")
    def registered(self, connection: Connection, envelope: Envelope) -> None:
        data = envelope.data
        connection.execute(insert(care_directory).values(
            customer_id=data["customer_id"], status="active", tier=data["tier"], locale=data["locale"],
            timezone=data["timezone"], birthday_calendar=data["birthday_calendar"],
            care_consent=CARE in data["consents"], tags=json.dumps(sorted(set(data["tags"])))))

    @handles("customers", "CustomerDetailsChanged")
    def details_changed(self, connection: Connection, envelope: Envelope) -> None:
        changes = envelope.data["changes"]
        values = {key: changes[key] for key in _PLAIN_CHANGES if key in changes}
        if "tags" in changes:
            values["tags"] = json.dumps(sorted(set(changes["tags"])))
        if values:
            self._set(connection, envelope, **values)

    @handles("customers", "CustomerTierChanged")
    def tier_changed(self, connection: Connection, envelope: Envelope) -> None:
        self._set(connection, envelope, tier=envelope.data["tier"])

    @handles("customers", "ConsentGiven", "ConsentWithdrawn")
    def consent_changed(self, connection: Connection, envelope: Envelope) -> None:
        if envelope.data["purpose"] == CARE:
            self._set(connection, envelope, care_consent=envelope.type == "ConsentGiven")

    @handles("customers", "CustomerErased")
    def erased(self, connection: Connection, envelope: Envelope) -> None:
        self._set(connection, envelope, status="erased", care_consent=False, tags="[]")

    @staticmethod
    def _set(connection: Connection, envelope: Envelope, **values) -> None:
        connection.execute(update(care_directory)
                           .where(care_directory.c.customer_id == envelope.data["customer_id"]).values(**values))


class CampaignList(Projection):
    name = "campaigns.list"
    metadata = list_metadata

    @handles("campaigns", "CampaignCreated")
    def created(self, connection: Connection, envelope: Envelope) -> None:
        data = envelope.data
        connection.execute(insert(campaign_list).values(
            campaign_id=data["campaign_id"], name=data["name"], kind=data["kind"], holiday=data["holiday"],
            channel=data["channel"], status="active", version=envelope.stream_version,
            created_at=envelope.recorded_at, updated_at=envelope.recorded_at))

    @handles("campaigns", "CampaignPaused", "CampaignResumed", "CampaignArchived")
    def status_changed(self, connection: Connection, envelope: Envelope) -> None:
        status = {"CampaignPaused": "paused", "CampaignResumed": "active", "CampaignArchived": "archived"}[envelope.type]
        connection.execute(update(campaign_list).where(campaign_list.c.campaign_id == envelope.data["campaign_id"])
                           .values(status=status, version=envelope.stream_version, updated_at=envelope.recorded_at))
