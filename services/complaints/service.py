"""complaints — record → classify → assign → track → confirm satisfied (seed 004).

Each command validates its payload, checks the caller's role, loads the
complaint from its stream, lets the domain decide at the service clock's
``now``, seals the free texts with the customer's key, and appends. Reads of
one complaint come from the log (always current); ``list`` and ``stats``
come from the complaint list projection. Customers are known from the
service's own projection of the customers' events, fed by an event handler.
The SLA timer sweeps open complaints once per interval on the replica that
holds its lease; ``run_sla_check(now)`` runs the same sweep on demand.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from nameko.events import event_handler
from nameko.rpc import rpc

from contracts import complaints as contract
from services.complaints import domain, views
from services.complaints.directory import CustomerDirectory, customer_status
from services.complaints.projection import ComplaintList
from services.complaints.rules import DEFAULT_TIMER_SECONDS, TIMER_SECONDS_KEY, ComplaintRules
from services.complaints.sweep import SLA_TIMER_LEASE, TIMER_PRINCIPAL, sweep
from shared.auth import Authorization, allow
from shared.clock import Clock
from shared.errors import Conflict, NotFound, ValidationError
from shared.event_log import EventLog
from shared.eventstore.envelope import NewEvent, new_id
from shared.log_endpoints import LogEndpoints
from shared.timers import leased_timer
from shared.validation import load_call

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
FILERS = ("agent", "supervisor", "service", "admin")
HANDLERS = ("agent", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
READERS = ("agent", "supervisor", "service", "admin", "auditor")

Decision = Callable[[domain.Complaint, Any], list[NewEvent]]


class ComplaintsService(LogEndpoints):
    name = "complaints"

    auth = Authorization()
    sla = ComplaintRules()
    clock = Clock()
    log = EventLog(projections=lambda keys: [CustomerDirectory(keys), ComplaintList(keys)],
                   migrations=MIGRATIONS)

    # -- commands --------------------------------------------------------------

    @rpc
    @allow(*FILERS)
    def file(self, *args, **kwargs):
        """Record a complaint; answers its priority and SLA due times."""
        command = load_call(contract.File(), args, kwargs)
        return self.log.once(command["command_id"], lambda: self._file(command))

    @rpc
    @allow(*SUPERVISORS)
    def classify(self, *args, **kwargs):
        command = load_call(contract.Classify(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_classify(
            complaint, command["category"], command["priority"], now, command["expected_version"]))

    @rpc
    @allow(*SUPERVISORS)
    def assign(self, *args, **kwargs):
        """Assign or reassign to an agent."""
        command = load_call(contract.Assign(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_assign(
            complaint, command["agent"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def respond(self, *args, **kwargs):
        command = load_call(contract.Respond(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_respond(
            complaint, command["message"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def request_info(self, *args, **kwargs):
        """Ask the customer; the SLA clocks stop until ``customer_replied`` or the next ``respond``."""
        command = load_call(contract.RequestInfo(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_request_info(
            complaint, command["question"], now, command["expected_version"]))

    @rpc
    @allow(*FILERS)
    def customer_replied(self, *args, **kwargs):
        """The customer's answer to ``request_info``; the SLA clocks run again."""
        command = load_call(contract.CustomerReplied(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_customer_replied(
            complaint, command["message"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def escalate(self, *args, **kwargs):
        """上报: one level up, with a reason."""
        command = load_call(contract.Escalate(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_escalate(
            complaint, command["reason"], now, self.sla.rules, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def resolve(self, *args, **kwargs):
        command = load_call(contract.Resolve(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_resolve(
            complaint, command["resolution"], now, command["expected_version"]))

    @rpc
    @allow(*FILERS)
    def confirm(self, *args, **kwargs):
        """The customer's confirmation: satisfied closes, not satisfied reopens; the score is asked once."""
        command = load_call(contract.Confirm(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_confirm(
            complaint, command["satisfied"], command["score"], now, command["expected_version"]))

    @rpc
    @allow(*HANDLERS)
    def reopen(self, *args, **kwargs):
        """Reopen a resolved complaint; a closed one is final (file a new one that links to it)."""
        command = load_call(contract.Reopen(), args, kwargs)
        return self._decide(command, lambda complaint, now: domain.decide_reopen(
            complaint, command["reason"], now, command["expected_version"]))

    # -- reads -------------------------------------------------------------------

    @rpc
    @allow(*READERS)
    def get(self, *args, **kwargs):
        """The whole complaint; showing its texts in clear is recorded as ``PiiAccessed``."""
        complaint_id = load_call(contract.GetComplaint(), args, kwargs)["complaint_id"]
        envelopes = self.log.store.read_stream(domain.stream_of(complaint_id))
        complaint = domain.fold(complaint_id, envelopes)
        if complaint.status == "new":
            raise NotFound(f"no complaint {complaint_id}")
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
        return sweep(self.log, self.principal, self.sla.rules, now)

    @leased_timer(SLA_TIMER_LEASE, interval=DEFAULT_TIMER_SECONDS, config_key=TIMER_SECONDS_KEY)
    def sla_tick(self):
        """Warn, breach, escalate, remind and auto-close; only on the replica holding the lease."""
        sweep(self.log, TIMER_PRINCIPAL, self.sla.rules, self.clock.now())

    # -- customers' events -----------------------------------------------------------

    @event_handler("customers", "#")
    def on_customer_event(self, envelope):
        """Keep the directory (known, erased) and the list (erasure drops PII) in step."""
        self.log.project("customers", envelope)

    # -- helpers -----------------------------------------------------------------

    def _load(self, complaint_id: str) -> domain.Complaint:
        complaint = domain.fold(complaint_id, self.log.store.read_stream(domain.stream_of(complaint_id)))
        if complaint.status == "new":
            raise NotFound(f"no complaint {complaint_id}")
        return complaint

    def _file(self, command: dict[str, Any]) -> dict[str, Any]:
        customer_id = command["customer_id"]
        self._require_known_customer(customer_id)
        if command["related_complaint_id"]:
            self._require_related(command["related_complaint_id"], customer_id)
        complaint_id = new_id()
        events = views.seal(self.log.keys, customer_id,
                            domain.decide_file(complaint_id, command, self.clock.now(), self.sla.rules))
        appended = self.log.append(self.principal, domain.stream_of(complaint_id), events, 0,
                                   command_id=command["command_id"],
                                   result=lambda done: views.filed_result(complaint_id, done))
        return appended if isinstance(appended, dict) else views.filed_result(complaint_id, appended)

    def _decide(self, command: dict[str, Any], decide: Decision) -> dict[str, Any]:
        """Load, decide, seal, append: the path of every command on an existing complaint."""
        def handle() -> dict[str, Any]:
            complaint = self._load(command["complaint_id"])
            events = decide(complaint, self.clock.now())
            if not events:
                return views.command_result(complaint)
            sealed = views.seal(self.log.keys, complaint.customer_id, events)
            appended = self.log.append(self.principal, domain.stream_of(complaint.complaint_id), sealed,
                                       complaint.version, command_id=command["command_id"],
                                       result=lambda done: views.command_result(complaint, done))
            return appended if isinstance(appended, dict) else views.command_result(complaint, appended)

        return self.log.once(command["command_id"], handle)

    def _require_known_customer(self, customer_id: str) -> None:
        """Refuse unknown and erased customers; on a miss, pull the customers' log once first."""
        engine = self.log.store.engine
        status = customer_status(engine, customer_id)
        if status is None:
            try:
                self.log.provider.pull_upstreams()  # registered a moment ago: its event may be on its way
            except Exception as error:  # noqa: BLE001 - customers unreachable: decide on what we know
                log.warning("could not pull customers' events: %s", error)
            status = customer_status(engine, customer_id)
        if status is None:
            raise NotFound(f"no customer {customer_id} is known to the complaints service: "
                           "register the customer first (crm customers register)")
        if status == "erased":
            raise Conflict(f"customer {customer_id} was erased; no complaint can be filed for them")

    def _require_related(self, related_id: str, customer_id: str) -> None:
        related = domain.fold(related_id, self.log.store.read_stream(domain.stream_of(related_id)))
        if related.status == "new" or related.customer_id != customer_id:
            raise ValidationError({"related_complaint_id": [
                f"no complaint {related_id} of customer {customer_id} to link to"]})
