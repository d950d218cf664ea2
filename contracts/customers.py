"""Contracts of the customers service: RPC payloads and event data.

RPC schemas list fields in call order: positional arguments are
bound to them in that order.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.birthdays import FEB29_RULES
from contracts.fields import (Email, PastDate, Phone, Text, TimeZone, check_lunar_birthday, command_id,
                             identifier, locale, page, page_size)

TIERS = ("partner", "cooperative", "general", "potential_competitor")
CONSENT_PURPOSES = ("care_messages", "callbacks", "marketing")
CONTACT_PURPOSES = CONSENT_PURPOSES + ("complaint_handling",)
#: What ``reveal_contact`` discloses in clear for each purpose: the contact, and the birthday for care messages.
REVEALED_FIELDS: dict[str, tuple[str, ...]] = {**{purpose: ("name", "phone", "email") for purpose in CONTACT_PURPOSES},
                                               "care_messages": ("name", "phone", "email", "birthday")}
CALENDARS = ("gregorian", "lunar")
#: Why a customer is erased (PIPL art. 47). The erasure receipt outlives the customer's key, so its
#: reason is one of these codes, never free text that could name the customer.
ERASURE_REASONS = ("subject_request", "consent_withdrawn", "purpose_fulfilled", "retention_expired",
                   "service_ended", "unlawful_processing", "legal_requirement")
PII_FIELDS = ("name", "phone", "email", "birthday")
#: Event data fields sealed under the customer's key: the PII, and free texts that may hold it.
#: ``CustomerDetailsChanged`` seals the PII fields among its ``changes``.
SEALED_FIELDS: dict[str, tuple[str, ...]] = {"CustomerRegistered": PII_FIELDS, "CustomerTierChanged": ("reason",)}
MAX_TAGS = 20
MAX_REVEAL_BATCH = 500
MAX_DUE_BIRTHDAYS = 5000
#: Why ``reveal_contacts`` leaves a customer out.
REVEAL_REFUSALS = ("unknown", "erased", "no_consent")

Tier = lambda **kw: fields.String(validate=validate.OneOf(TIERS), **kw)  # noqa: E731
Tags = lambda **kw: fields.List(Text(40), validate=validate.Length(max=MAX_TAGS), **kw)  # noqa: E731


class _BirthdayRule:
    @validates_schema
    def birthday_needs_calendar(self, data, **_kwargs):
        if data.get("birthday_calendar") == "lunar" and data.get("birthday"):
            problem = check_lunar_birthday(data["birthday"])
            if problem:
                raise ValidationError({"birthday": [problem]})


class Register(_BirthdayRule, Schema):
    name = Text(100, casefolded=True, required=True)
    phone = Phone(load_default=None, allow_none=True)
    email = Email(load_default=None, allow_none=True)
    birthday = PastDate(load_default=None, allow_none=True)
    birthday_calendar = fields.String(load_default="gregorian", validate=validate.OneOf(CALENDARS))
    locale = locale(load_default="zh-CN")
    timezone = TimeZone(load_default="Asia/Shanghai")
    tier = Tier(load_default="general")
    tags = Tags(load_default=list)
    consents = fields.List(fields.String(validate=validate.OneOf(CONSENT_PURPOSES)), load_default=list)
    command_id = command_id()

    @validates_schema
    def needs_contact(self, data, **_kwargs):
        if not data.get("phone") and not data.get("email"):
            raise ValidationError({"phone": ["give a phone number or an email address"]})


class Changes(_BirthdayRule, Schema):
    """Fields ``update`` may change; at least one."""

    name = Text(100, casefolded=True)
    phone = Phone(allow_none=True)
    email = Email(allow_none=True)
    birthday = PastDate(allow_none=True)
    birthday_calendar = fields.String(validate=validate.OneOf(CALENDARS))
    locale = locale()
    timezone = TimeZone()
    tags = Tags()

    @validates_schema
    def not_empty(self, data, **_kwargs):
        if not data:
            raise ValidationError({"changes": ["name at least one field to change"]})


class Update(Schema):
    customer_id = identifier(required=True)
    changes = fields.Nested(Changes, required=True)
    expected_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    command_id = command_id()


class GetCustomer(Schema):
    customer_id = identifier(required=True)


class SetTier(Schema):
    customer_id = identifier(required=True)
    tier = Tier(required=True)
    reason = Text(500, multiline=True, required=True)
    command_id = command_id()


class Consent(Schema):
    customer_id = identifier(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(CONSENT_PURPOSES))
    command_id = command_id()


class Erase(Schema):
    customer_id = identifier(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(ERASURE_REASONS))
    command_id = command_id()


class Find(Schema):
    phone = Phone(load_default=None)
    email = Email(load_default=None)
    name_prefix = Text(100, casefolded=True, load_default=None)
    tier = Tier(load_default=None)
    tag = Text(40, load_default=None)
    page = page()
    page_size = page_size()


class RevealContact(Schema):
    customer_id = identifier(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(CONTACT_PURPOSES))


class RevealContacts(Schema):
    """A batch for a campaign run: distinct ids, at most ``MAX_REVEAL_BATCH``."""

    customer_ids = fields.List(identifier(), required=True,
                               validate=validate.Length(min=1, max=MAX_REVEAL_BATCH))
    purpose = fields.String(required=True, validate=validate.OneOf(CONTACT_PURPOSES))

    @validates_schema
    def distinct(self, data, **_kwargs):
        if len(set(data.get("customer_ids", ()))) != len(data.get("customer_ids", ())):
            raise ValidationError({"customer_ids": ["name each customer once"]})


class DueBirthdays(Schema):
    """Customers who consent to care messages and whose birthday is celebrated on ``on_date``, paged by id."""

    on_date = fields.Date(required=True)
    feb29 = fields.String(load_default="feb28", validate=validate.OneOf(FEB29_RULES))
    after = identifier(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=MAX_DUE_BIRTHDAYS, strict=True,
                           validate=validate.Range(min=1, max=MAX_DUE_BIRTHDAYS))


# -- event data (PII fields hold ciphertext ``enc:v2:...`` in the log) --------

class CustomerRegistered(Schema):
    customer_id = fields.String(required=True)
    name = fields.String(required=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    birthday = fields.String(allow_none=True)
    birthday_calendar = fields.String(required=True, validate=validate.OneOf(CALENDARS))
    locale = fields.String(required=True)
    timezone = fields.String(required=True)
    tier = Tier(required=True)
    tags = fields.List(fields.String(), required=True)
    consents = fields.List(fields.String(validate=validate.OneOf(CONSENT_PURPOSES)), required=True)


class CustomerDetailsChanged(Schema):
    customer_id = fields.String(required=True)
    changes = fields.Dict(keys=fields.String(validate=validate.OneOf(list(Changes().fields))), required=True)


class CustomerTierChanged(Schema):
    customer_id = fields.String(required=True)
    previous_tier = Tier(required=True)
    tier = Tier(required=True)
    reason = fields.String(required=True)


class ConsentChanged(Schema):
    customer_id = fields.String(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(CONSENT_PURPOSES))


class CustomerErased(Schema):
    customer_id = fields.String(required=True)
    receipt_id = fields.String(required=True)
    reason = fields.String(required=True)  # an ERASURE_REASONS code; free text in events logged before the codes
    erased_at = fields.String(required=True)


class PiiAccessed(Schema):
    """A read of one customer's PII in clear, recorded with the fields shown and why."""

    customer_id = fields.String(required=True)
    purpose = fields.String(required=True)
    fields_ = fields.List(fields.String(), required=True, data_key="fields")
    method = fields.String(required=True)


class CustomerPiiRead(PiiAccessed):
    """``PiiAccessed`` in the customers log: one customer's read, or a whole ``reveal_contacts`` batch.

    A batch names every customer revealed in ``customer_ids`` (1 to
    ``MAX_REVEAL_BATCH``), so a campaign run records one event per batch
    rather than one per customer; an event names one shape or the other.
    """

    customer_id = fields.String()
    customer_ids = fields.List(identifier(), validate=validate.Length(min=1, max=MAX_REVEAL_BATCH))

    @validates_schema
    def one_customer_or_a_batch(self, data, **_kwargs):
        if ("customer_id" in data) == ("customer_ids" in data):
            raise ValidationError({"customer_ids": ["name one customer (customer_id) or a batch (customer_ids)"]})


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "CustomerRegistered": CustomerRegistered,
    "CustomerDetailsChanged": CustomerDetailsChanged,
    "CustomerTierChanged": CustomerTierChanged,
    "ConsentGiven": ConsentChanged,
    "ConsentWithdrawn": ConsentChanged,
    "CustomerErased": CustomerErased,
    "PiiAccessed": CustomerPiiRead,
}

RPC_SCHEMAS: dict[str, type[Schema]] = {
    "register": Register, "get": GetCustomer, "update": Update, "set_tier": SetTier,
    "give_consent": Consent, "withdraw_consent": Consent, "erase": Erase, "find": Find,
    "reveal_contact": RevealContact, "reveal_contacts": RevealContacts, "due_birthdays": DueBirthdays, "export_subject": GetCustomer,
}
