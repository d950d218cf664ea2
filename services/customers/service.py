"""customers — the customer file (客户档案), tiers and consent.

Each RPC method validates its payload, checks the caller's role, loads the
customer from its stream, lets the domain decide, and appends. Reads of a
single customer come from the log (always current); searches come from the
directory projection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nameko.rpc import rpc

from contracts import customers as contract
from services.customers import domain, views
from services.customers.projection import CustomerDirectory
from shared.auth import Authorization, allow
from shared.errors import Forbidden
from shared.event_log import EventLog
from shared.eventstore.envelope import new_id, utc_now_iso
from shared.log_endpoints import LogEndpoints
from shared.validation import load_call

MIGRATIONS = Path(__file__).parent / "migrations"
UNMASKED_READERS = ("agent", "supervisor", "admin")


class CustomersService(LogEndpoints):
    name = "customers"

    auth = Authorization()
    log = EventLog(projections=lambda keys: [CustomerDirectory(keys)], migrations=MIGRATIONS)

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def register(self, *args, **kwargs):
        command = load_call(contract.Register(), args, kwargs)
        return self.log.once(command["command_id"], lambda: self._register(command))

    @rpc
    @allow("agent", "supervisor", "service", "admin", "auditor", "operator")
    def get(self, *args, **kwargs):
        customer_id = load_call(contract.GetCustomer(), args, kwargs)["customer_id"]
        customer = self._load(customer_id)
        unmasked = self.principal.role in UNMASKED_READERS and customer.status == "active"
        if unmasked:
            self._record_access(customer, "service_request", ["name", "phone", "email", "birthday"], "get")
        return views.customer_view(self.log.keys, customer, masked=not unmasked)

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def update(self, *args, **kwargs):
        command = load_call(contract.Update(), args, kwargs)
        customer = self._load(command["customer_id"])
        events = views.seal(self.log.keys, customer.customer_id,
                            domain.decide_update(customer, command["changes"], command["expected_version"]))
        return self.log.once(command["command_id"],
                             lambda: self._append(customer.customer_id, events, customer.version, command))

    @rpc
    @allow("supervisor", "admin")
    def set_tier(self, *args, **kwargs):
        command = load_call(contract.SetTier(), args, kwargs)
        return self._decide(command, lambda customer: domain.decide_set_tier(customer, command["tier"], command["reason"]))

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def give_consent(self, *args, **kwargs):
        command = load_call(contract.Consent(), args, kwargs)
        return self._decide(command, lambda customer: domain.decide_consent(customer, command["purpose"], give=True))

    @rpc
    @allow("agent", "supervisor", "service", "admin")
    def withdraw_consent(self, *args, **kwargs):
        command = load_call(contract.Consent(), args, kwargs)
        return self._decide(command, lambda customer: domain.decide_consent(customer, command["purpose"], give=False))

    @rpc
    @allow("admin")
    def erase(self, *args, **kwargs):
        """Crypto-shred the customer's PII; the PII-free receipt is the result."""
        command = load_call(contract.Erase(), args, kwargs)
        result = self._decide(command, lambda customer: domain.decide_erase(customer, command["reason"], utc_now_iso()),
                              views.erasure_receipt)
        self.log.keys.destroy(command["customer_id"])
        return result

    @rpc
    @allow("agent", "supervisor", "service", "admin", "auditor", "operator")
    def find(self, *args, **kwargs):
        query = load_call(contract.Find(), args, kwargs)
        return views.find(self.log.store.engine, query)

    @rpc
    @allow("service", "agent", "supervisor", "admin")
    def reveal_contact(self, *args, **kwargs):
        """Contact details in full, for a caller about to send or call; the read is recorded."""
        query = load_call(contract.RevealContact(), args, kwargs)
        customer = self._load(query["customer_id"])
        customer.require_active()
        purpose = query["purpose"]
        if purpose in contract.CONSENT_PURPOSES and purpose not in customer.consents:
            raise Forbidden(f"customer {customer.customer_id} has not consented to {purpose}")
        self._record_access(customer, purpose, ["name", "phone", "email"], "reveal_contact")
        return views.contact_view(self.log.keys, customer)

    @rpc
    @allow("admin")
    def export_subject(self, *args, **kwargs):
        """Everything held on the customer (PIPL art. 45), decrypted where keys remain."""
        customer_id = load_call(contract.GetCustomer(), args, kwargs)["customer_id"]
        customer = self._load(customer_id)
        if customer.status == "active":
            self._record_access(customer, "subject_access_request", list(contract.PII_FIELDS), "export_subject")
        return views.subject_export(self.log.keys, self.log.store, customer)

    # -- helpers -------------------------------------------------------------

    def _load(self, customer_id: str) -> domain.Customer:
        customer = domain.fold(customer_id, self.log.store.read_stream(domain.stream_of(customer_id)))
        if customer.status == "new":
            domain.Customer(customer_id).require_active()
        return customer

    def _register(self, command: dict[str, Any]) -> dict[str, Any]:
        customer_id = new_id()
        self.log.keys.create(customer_id)
        events = views.seal(self.log.keys, customer_id, domain.decide_register(customer_id, command))
        return self._append(customer_id, events, 0, command)

    def _decide(self, command: dict[str, Any], decide, result=views.command_result) -> dict[str, Any]:
        """Load, decide, append: the path of every command on an existing customer."""
        def handle() -> dict[str, Any]:
            customer = self._load(command["customer_id"])
            events = decide(customer)
            if not events:
                return {"customer_id": customer.customer_id, "version": customer.version}
            return self._append(customer.customer_id, events, customer.version, command, result)

        return self.log.once(command["command_id"], handle)

    def _append(self, customer_id: str, events, expected_version: int, command: dict[str, Any],
                result=views.command_result) -> dict[str, Any]:
        appended = self.log.append(self.principal, domain.stream_of(customer_id), events, expected_version,
                                   command_id=command.get("command_id"),
                                   result=lambda done: result(customer_id, done))
        return appended if isinstance(appended, dict) else result(customer_id, appended)

    def _record_access(self, customer: domain.Customer, purpose: str, fields: list[str], method: str) -> None:
        self.log.append(self.principal, domain.access_stream_of(customer.customer_id),
                        domain.decide_pii_access(customer, purpose, fields, method), None)
