"""complaints — record → classify → assign → track → confirm satisfied (docs/domain.md).

Each command validates its payload, checks the caller's role and lets the
domain decide at the service clock's ``now`` through the shared command
path (``shared.commands``: idempotency, load, decide, seal, append). Reads
of one complaint come from the log (always current); ``list`` and
``stats`` come from the complaint list projection. Customers are known
from the service's own projection of the customers' events.
The SLA timer sweeps open complaints once per interval on the replica that
holds its lease; ``run_sla_check(now)`` runs the same sweep on demand.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shared.rpc import rpc

from contracts import complaints as contract
from services.complaints import domain, views
from services.complaints.aggregate import COMPLAINT, filed_answer
from services.complaints.callback_issues import FileComplaintForCallbackIssue
from services.complaints.known_customers import KnownCustomers, customer_status
from services.complaints.projection import ComplaintList
from services.complaints.rules import DEFAULT_TIMER_SECONDS, TIMER_SECONDS_KEY, ComplaintRules
from services.complaints.sweep import SLA_TIMER_LEASE, TIMER_PRINCIPAL, sweep
from shared.auth import Authorization, allow
from shared.clock import Clock
from shared.commands import Repository
from shared.erasure import DestroyDataKeyOnErasure
from shared.errors import Conflict, NotFound, ValidationError
from shared.event_log import EventLog
from shared.eventstore.envelope import new_id
from shared.log_endpoints import LogEndpoints
from shared.timers import leased_timer
from shared.validation import load_call

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
FILERS = ("agent", "supervisor", "service", "admin")
HANDLERS = ("agent", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
READERS = ("agent", "supervisor", "service", "admin", "auditor")


class ComplaintsService(LogEndpoints):
    name = "complaints"

    auth = Authorization()
    sla = ComplaintRules()
    clock = Clock()
    log = EventLog(consumers=[KnownCustomers, ComplaintList, DestroyDataKeyOnErasure, FileComplaintForCallbackIssue],
                   migrations=MIGRATIONS)
    complaints = Repository(COMPLAINT)

    # -- commands --------------------------------------------------------------

    @rpc
    @allow(*FILERS)
    def file(self, *args, **kwargs):
        """Record a complaint; answers its priority and SLA due times."""
        command = load_call(contract.File(), args, kwargs)

        def decide(complaint: domain.Complaint):
            self._require_known_customer(command["customer_id"])
            if command["related_complaint_id"]:
                self._require_related(command["related_complaint_id"], command["customer_id"])
            return domain.decide_file(complaint.complaint_id, command, self.clock.now(), self.sla.rules)

        return self.complaints.create(new_id(), command, decide, filed_answer)

    @rpc
    @allow(*SUPERVISORS)
    def classify(self, *args, **kwargs):
        command = load_call(contract.Classify(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_classify(
            complaint, command["category"], command["priority"], now, command["expected_version"]))

    @rpc
    @allow(*SUPERVISORS)
    def assign(self, *args, **kwargs):
        """Assign or reassign to an agent."""
        command = load_call(contract.Assign(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_assign(
            complaint, command["agent"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def respond(self, *args, **kwargs):
        command = load_call(contract.Respond(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_respond(
            complaint, command["message"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def request_info(self, *args, **kwargs):
        """Ask the customer; the SLA clocks stop until ``customer_replied`` or the next ``respond``."""
        command = load_call(contract.RequestInfo(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_request_info(
            complaint, command["question"], now, command["expected_version"]))

    @rpc
    @allow(*FILERS)
    def customer_replied(self, *args, **kwargs):
        """The customer's answer to ``request_info``; the SLA clocks run again."""
        command = load_call(contract.CustomerReplied(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_customer_replied(
            complaint, command["message"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def escalate(self, *args, **kwargs):
        """上报: one level up, with a reason."""
        command = load_call(contract.Escalate(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_escalate(
            complaint, command["reason"], now, self.sla.rules, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def resolve(self, *args, **kwargs):
        command = load_call(contract.Resolve(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_resolve(
            complaint, command["resolution"], now, command["expected_version"]))

    @rpc
    @allow(*FILERS)
    def confirm(self, *args, **kwargs):
        """The customer's confirmation: satisfied closes, not satisfied reopens; the score is asked once."""
        command = load_call(contract.Confirm(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_confirm(
            complaint, command["satisfied"], command["score"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def reopen(self, *args, **kwargs):
        """Reopen a resolved complaint; a closed one is final (file a new one that links to it)."""
        command = load_call(contract.Reopen(), args, kwargs)
        return self._change(command, lambda complaint, now: domain.decide_reopen(
            complaint, command["reason"], now, command["expected_version"]))

    # -- reads -------------------------------------------------------------------

    @rpc
    @allow(*READERS)
    def get(self, *args, **kwargs):
        """The whole complaint; showing its texts in clear is recorded as ``PiiAccessed``."""
        complaint_id = load_call(contract.GetComplaint(), args, kwargs)["complaint_id"]
        complaint, envelopes = self.complaints.history(complaint_id)
        view = views.complaint_view(self.log.keys, complaint, envelopes, self.sla.rules, self.clock.now(),
                                    show_texts=self.principal.role in views.TEXT_READERS)
        shown = views.texts_in(view)
        if shown:
            self.log.append(self.principal, domain.access_stream_of(complaint_id),
                            domain.decide_text_access(complaint, shown, "get"), None)
        return view

    @rpc
    @allow(*READERS)
    def list(self, *args, **kwargs):
        """Newest first, filtered and paged, from the complaint list projection."""
        query = load_call(contract.ListComplaints(), args, kwargs)
        return views.list_complaints(self.log.store.engine, query,
                                     show_summary=self.principal.role in views.TEXT_READERS)

    @rpc
    @allow(*READERS)
    def stats(self, *args, **kwargs):
        query = load_call(contract.Stats(), args, kwargs)
        return views.stats(self.log.store.engine, query["since"], query["until"], self.sla.rules.calendar.zone)

    # -- SLA -----------------------------------------------------------------------

    @rpc
    @allow("admin")
    def run_sla_check(self, *args, **kwargs):
        """The timer's sweep, now, at ``now`` if given (tests and operators move the clock)."""
        query = load_call(contract.RunSlaCheck(), args, kwargs)
        now = domain.parse(query["now"]) if query["now"] else self.clock.now()
        return sweep(self.complaints, self.log, self.principal, self.sla.rules, now)

    @leased_timer(SLA_TIMER_LEASE, interval=DEFAULT_TIMER_SECONDS, config_key=TIMER_SECONDS_KEY)
    def sla_tick(self):
        """Warn, breach, escalate, remind and auto-close; only on the replica holding the lease."""
        sweep(self.complaints, self.log, TIMER_PRINCIPAL, self.sla.rules, self.clock.now())

    # -- helpers -----------------------------------------------------------------

    def _change(self, command: dict[str, Any], decide) -> dict[str, Any]:
        """Run ``decide(complaint, now)`` on the complaint the command names, at the service clock's now."""
        return self.complaints.change(command["complaint_id"], command,
                                      lambda complaint: decide(complaint, self.clock.now()))

    def _require_known_customer(self, customer_id: str) -> None:
        """Refuse unknown and erased customers; on a miss, pull the customers' log once first."""
        engine = self.log.store.engine
        status = customer_status(engine, customer_id)
        if status is None:
            try:
                self.log.provider.pull_upstreams()  # registered a moment ago: its event may be on its way
            except Exception as error:  # noqa: BLE001 - customers unreachable: decide on what we know
                logger.warning("could not pull customers' events: %s", error)
            status = customer_status(engine, customer_id)
        if status is None:
            raise NotFound(f"no customer {customer_id} is known to the complaints service: "
                           "register the customer first (crm customers register)")
        if status == "erased":
            raise Conflict(f"customer {customer_id} was erased; no complaint can be filed for them")

    def _require_related(self, related_id: str, customer_id: str) -> None:
        try:
            related = self.complaints.load(related_id)
        except NotFound:
            related = None
        if related is None or related.customer_id != customer_id:
            raise ValidationError({"related_complaint_id": [
                f"no complaint {related_id} of customer {customer_id} to link to"]})
