"""customers — the customer file (客户档案), tiers and consent.

Each RPC method validates its payload, checks the caller's role and hands
the decision to the domain through the shared command path
(``shared.commands``). Reads of a single customer come from the log
(always current); searches come from the directory projection. Erasure is
an event: the data key is destroyed by a reaction to it, once.
"""

from __future__ import annotations

from pathlib import Path

from shared.rpc import rpc

from contracts import customers as contract
from services.customers import domain, views
from services.customers.aggregate import CUSTOMER, erasure_receipt
from services.customers.projection import CustomerDirectory
from shared.auth import Authorization, allow
from shared.birthdays import celebrated_on
from shared.commands import Repository
from shared.erasure import DestroyDataKeyOnErasure
from shared.errors import Forbidden
from shared.event_log import EventLog
from shared.eventstore.envelope import new_id, utc_now_iso
from shared.log_endpoints import LogEndpoints
from shared.validation import load_call

MIGRATIONS = Path(__file__).parent / "migrations"
UNMASKED_READERS = ("agent", "supervisor", "admin")  # operators, auditors and services get masks


class CustomersService(LogEndpoints):
    name = "customers"

    auth = Authorization()
    log = EventLog(consumers=[CustomerDirectory, DestroyDataKeyOnErasure], migrations=MIGRATIONS)
    customers = Repository(CUSTOMER)

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def register(self, *args, **kwargs):
        command = load_call(contract.Register(), args, kwargs)
        return self.customers.create(new_id(), command,
                                     lambda customer: domain.decide_register(customer.customer_id, command))

    @rpc
    @allow("agent", "supervisor", "service", "admin", "auditor", "operator")
    def get(self, *args, **kwargs):
        customer = self.customers.load(load_call(contract.GetCustomer(), args, kwargs)["customer_id"])
        unmasked = self.principal.role in UNMASKED_READERS and customer.status == "active"
        if unmasked:
            self._record_access(customer, "service_request", list(contract.PII_FIELDS), "get")
        return views.customer_view(self.log.keys, customer, masked=not unmasked)

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def update(self, *args, **kwargs):
        command = load_call(contract.Update(), args, kwargs)
        return self.customers.change(command["customer_id"], command, lambda customer: domain.decide_update(
            customer, command["changes"], command["expected_version"]))

    @rpc
    @allow("supervisor", "admin")
    def set_tier(self, *args, **kwargs):
        command = load_call(contract.SetTier(), args, kwargs)
        return self.customers.change(command["customer_id"], command, lambda customer: domain.decide_set_tier(
            customer, command["tier"], command["reason"]))

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def give_consent(self, *args, **kwargs):
        command = load_call(contract.Consent(), args, kwargs)
        return self.customers.change(command["customer_id"], command, lambda customer: domain.decide_consent(
            customer, command["purpose"], give=True))

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def withdraw_consent(self, *args, **kwargs):
        command = load_call(contract.Consent(), args, kwargs)
        return self.customers.change(command["customer_id"], command, lambda customer: domain.decide_consent(
            customer, command["purpose"], give=False))

    @rpc
    @allow("admin")
    def erase(self, *args, **kwargs):
        """Crypto-shred the customer's PII; the PII-free receipt is the result.

        The key is destroyed by the erasure reaction, which runs here before
        answering (and in the background if it fails now), so the receipt
        says whether it is gone yet.
        """
        command = load_call(contract.Erase(), args, kwargs)
        erased = self.customers.change(command["customer_id"], command, lambda customer: domain.decide_erase(
            customer, command["reason"], utc_now_iso()), erasure_receipt)
        self.log.provider.catch_up()
        key_destroyed = self.log.keys.is_destroyed(command["customer_id"])
        return {**erased, "receipt": {**erased["receipt"], "key_destroyed": key_destroyed}}

    @rpc
    @allow("agent", "supervisor", "service", "admin", "auditor", "operator")
    def find(self, *args, **kwargs):
        query = load_call(contract.Find(), args, kwargs)
        return views.find(self.log.store.engine, query)

    @rpc
    @allow("service", "agent", "supervisor", "admin")
    def reveal_contact(self, *args, **kwargs):
        """What a purpose needs in clear, for a caller about to send or call; the read is recorded.

        The one way a service reads PII in clear: ``get`` masks it for services.
        """
        query = load_call(contract.RevealContact(), args, kwargs)
        customer = self.customers.load(query["customer_id"])
        customer.require_active()
        purpose = query["purpose"]
        if purpose in contract.CONSENT_PURPOSES and purpose not in customer.consents:
            raise Forbidden(f"customer {customer.customer_id} has not consented to {purpose}")
        self._record_access(customer, purpose, list(contract.REVEALED_FIELDS[purpose]), "reveal_contact")
        return views.contact_view(self.log.keys, customer, purpose)

    @rpc
    @allow("service", "admin")
    def reveal_contacts(self, *args, **kwargs):
        """``reveal_contact`` for up to 500 customers at once (a campaign run), as one append.

        Answers ``{"contacts": [...], "refused": [{customer_id, reason}]}``
        with reasons ``unknown``, ``erased`` and ``no_consent``. It reads the
        directory, which ``erase`` brings up to date before it answers (so
        an erasure is always honoured) and which the service keeps up with
        its log in the background (a withdrawal a moment old may not be in
        it yet; campaigns check consent in their own directory too); an id
        the directory does not know makes it catch up first. The batch is
        recorded as one ``PiiAccessed`` listing every contact revealed, in
        a stream of its own (``domain.batch_access_stream``).
        """
        query = load_call(contract.RevealContacts(), args, kwargs)
        contacts, refused = views.contacts(self.log.store.engine, query["customer_ids"], query["purpose"])
        if any(refusal["reason"] == "unknown" for refusal in refused):  # registered a moment ago?
            self.log.provider.catch_up()
            contacts, refused = views.contacts(self.log.store.engine, query["customer_ids"], query["purpose"])
        if contacts:
            self.log.append(self.principal, domain.batch_access_stream(new_id()),
                            domain.decide_batch_access([contact["customer_id"] for contact in contacts],
                                                       query["purpose"],
                                                       list(contract.REVEALED_FIELDS[query["purpose"]])), 0)
        return {"contacts": contacts, "refused": refused}

    @rpc
    @allow("service", "admin")
    def due_birthdays(self, *args, **kwargs):
        """Ids of consenting customers whose birthday (gregorian or lunar) falls on ``on_date``, paged.

        Only the ids leave the service: a campaign learns whom to greet
        without holding anyone's birthday, and reveals the contacts of just
        those customers when it sends. It reads the directory as the
        service's background follower keeps it (a registration a moment old
        is greeted at the campaign's next run).
        """
        query = load_call(contract.DueBirthdays(), args, kwargs)
        return views.due_birthdays(self.log.store.engine, celebrated_on(query["on_date"], query["feb29"]),
                                   query["after"], query["limit"])

    @rpc
    @allow("admin")
    def export_subject(self, *args, **kwargs):
        """Everything held on the customer (PIPL art. 45), decrypted where keys remain."""
        customer = self.customers.load(load_call(contract.GetCustomer(), args, kwargs)["customer_id"])
        if customer.status == "active":
            self._record_access(customer, "subject_access_request", list(contract.PII_FIELDS), "export_subject")
        return views.subject_export(self.log.keys, self.log.store, customer)

    def _record_access(self, customer: domain.Customer, purpose: str, fields: list[str], method: str) -> None:
        self.log.append(self.principal, domain.access_stream_of(customer.customer_id),
                        domain.decide_pii_access(customer, purpose, fields, method), None)
