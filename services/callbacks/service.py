"""callbacks — follow-up calls (回访) with retries inside calling windows, KPIs, and issues fed back.

Each command validates its payload, checks the caller's role and lets the
domain decide at the service clock's ``now`` through the shared command
path (``shared.commands``). Reads of one callback come from the log;
``list_due`` and ``kpis`` come from the callback projections. Customers
(zone, tier, consent) are known from the service's own projection of the
customers' events; complaints from its projection of the complaints' log.
Reactions schedule the satisfaction callback after ``ComplaintResolved``
and cancel pending callbacks on consent withdrawal and erasure. The sweep
(pool returns, periodic callbacks) runs on the replica holding its lease;
``run_sweep(now)`` runs it on demand.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from contracts import callbacks as contract
from services.callbacks import domain, views
from services.callbacks.aggregate import CALLBACK, PERIODIC_RULES
from services.callbacks.known_customers import KnownCustomers, customer, customers, is_callable
from services.callbacks.projection import CallbackList
from services.callbacks.reactions import CancelWhenNotCallable, ScheduleSatisfactionCallback
from services.callbacks.rules import DEFAULT_TIMER_SECONDS, TIMER_SECONDS_KEY, CallbackRules
from services.callbacks.sweep import SWEEP_LEASE, TIMER_PRINCIPAL, sweep
from shared.auth import Authorization, allow
from shared.canonical import canonical_json
from shared.clock import Clock
from shared.commands import Repository, derived_command_id
from shared.erasure import DestroyDataKeyOnErasure
from shared.errors import Forbidden, NotFound
from shared.event_log import EventLog
from shared.eventstore.envelope import new_id
from shared.log_endpoints import LogEndpoints
from shared.rpc import rpc
from shared.timers import leased_timer
from shared.validation import load_call

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEDULERS = ("agent", "supervisor", "service", "admin")
CALLERS = ("agent", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
READERS = ("agent", "supervisor", "service", "admin", "auditor")
_SAMPLED_CALLBACKS = uuid.UUID("6f0a2b1c-9d8e-4c7b-a6f5-e4d3c2b1a098")


class CallbacksService(LogEndpoints):
    name = "callbacks"

    auth = Authorization()
    config = CallbackRules()
    clock = Clock()
    log = EventLog(consumers=[KnownCustomers, CallbackList, ScheduleSatisfactionCallback, CancelWhenNotCallable,
                              DestroyDataKeyOnErasure], migrations=MIGRATIONS)
    callbacks = Repository(CALLBACK)
    rule_book = Repository(PERIODIC_RULES)

    # -- commands --------------------------------------------------------------

    @rpc
    @allow(*SCHEDULERS)
    def schedule(self, *args, **kwargs):
        """Schedule a callback; a due time outside the calling window moves to its next opening (``moved`` says why)."""
        command = load_call(contract.Schedule(), args, kwargs)
        known = self._customer(command["customer_id"])
        now, rules = self.clock.now(), self.config.rules
        return self.callbacks.create(new_id(), command, lambda state: domain.decide_schedule(
            state.callback_id, command, known, now, rules))

    @rpc
    @allow(*SCHEDULERS)
    def sample(self, *args, **kwargs):
        """战败回访: schedule callbacks for at least ``rate`` of ``customer_ids``, the same ones for the same input."""
        command = load_call(contract.Sample(), args, kwargs)
        ids = command["customer_ids"]
        known = customers(self.log.store.engine, ids)
        picked, skipped = domain.pick(command["kind"], ids, command["rate"],
                                      {customer_id for customer_id, row in known.items() if is_callable(row)})
        for entry in picked:
            entry.update(self._schedule_picked(command, entry, known[entry["customer_id"]]))
        return {"kind": command["kind"], "population": len(ids), "rate": command["rate"],
                "required": domain.sample_size(len(ids), command["rate"]), "picked": picked, "skipped": skipped,
                "share_pct": round(100.0 * len(picked) / len(ids), 1)}

    @rpc
    @allow(*CALLERS)
    def record_attempt(self, *args, **kwargs):
        """One call and its outcome; retries, failure, completion and a raised issue follow from it."""
        command = load_call(contract.RecordAttempt(), args, kwargs)
        now, rules, agent = self.clock.now(), self.config.rules, self.principal.actor_id
        return self.callbacks.change(command["callback_id"], command,
                                     lambda state: domain.decide_attempt(state, command, agent, now, rules))

    @rpc
    @allow(*SCHEDULERS)
    def cancel(self, *args, **kwargs):
        command = load_call(contract.Cancel(), args, kwargs)
        now = self.clock.now()
        return self.callbacks.change(command["callback_id"], command, lambda state: domain.decide_cancel(
            state, command["reason"], now, command["expected_version"]))

    @rpc
    @allow(*SUPERVISORS)
    def set_periodic_rule(self, *args, **kwargs):
        """定期回访: call customers of ``tier`` every ``every_days`` days (0 stops it); the sweep schedules them."""
        command = load_call(contract.SetPeriodicRule(), args, kwargs)
        now = self.clock.now()
        first = self.log.store.stream_version(domain.RULES_STREAM) == 0
        run = self.rule_book.create if first else self.rule_book.change
        return run(domain.RULES_STREAM, command,
                   lambda rules: domain.decide_periodic_rule(rules.by_tier, command, now))

    # -- reads -------------------------------------------------------------------

    @rpc
    @allow(*READERS)
    def get(self, *args, **kwargs):
        """The whole callback; showing notes or issues in clear is recorded as ``PiiAccessed``."""
        callback_id = load_call(contract.GetCallback(), args, kwargs)["callback_id"]
        state, envelopes = self.callbacks.history(callback_id)
        view = views.callback_view(self.log.keys, state, envelopes,
                                   views.linked_complaints(self.log.store.engine, callback_id),
                                   show_texts=self.principal.role in views.TEXT_READERS)
        self._record_read(state, views.texts_in(view), "get")
        return view

    @rpc
    @allow(*READERS)
    def list_due(self, *args, **kwargs):
        """Pending callbacks due before ``before`` (default now), by due time then priority; an agent sees their own and the pool."""
        query = load_call(contract.ListDue(), args, kwargs)
        assignee = query["assignee"]
        if self.principal.role == "agent":
            if assignee not in (None, self.principal.actor_id):
                raise Forbidden("an agent sees their own queue; ask a supervisor for another agent's")
            assignee = self.principal.actor_id
        before = query["before"] or domain.iso(self.clock.now())
        return views.list_due(self.log.store.engine, before, assignee, query["include_pool"], query["limit"],
                              query["kind"])

    @rpc
    @allow(*READERS)
    def periodic_rules(self, *args, **kwargs):
        """The periodic rule of each tier that has one: ``{tier: {every_days, priority, set_at}}``."""
        load_call(contract.PeriodicRules(), args, kwargs)
        return domain.fold_rules(self.log.store.read_stream(domain.RULES_STREAM))

    @rpc
    @allow("supervisor", "admin", "auditor")
    def kpis(self, *args, **kwargs):
        """Success rate (≥ 95 %), 规范率 (≥ 90 %), satisfaction; per agent, kind and day; shortfalls flagged."""
        query = load_call(contract.Kpis(), args, kwargs)
        return views.kpis(self.log.store.engine, query["since"], query["until"], self.config.rules.window.zone)

    @rpc
    @allow("service")
    def issue_text(self, *args, **kwargs):
        """The issue raised by one ``CallbackIssueRaised`` event, in clear, for the complaint filed for it."""
        query = load_call(contract.IssueText(), args, kwargs)
        state, envelopes = self.callbacks.history(query["callback_id"])
        raised = next((envelope for envelope in envelopes if envelope.event_id == str(query["event_id"])
                       and envelope.type == "CallbackIssueRaised"), None)
        if raised is None:
            raise NotFound(f"callback {state.callback_id} raised no issue in event {query['event_id']}")
        text = self.log.keys.opening_key(state.customer_id).open(
            raised.data["issue"], domain.stream_of(state.callback_id), "issue")
        if text is not None:
            self._record_read(state, ["issue"], "issue_text")
        return {"callback_id": state.callback_id, "customer_id": state.customer_id,
                "category": raised.data["category"], "issue": text, "raised_at": raised.occurred_at}

    # -- sweep -----------------------------------------------------------------------

    @rpc
    @allow("admin")
    def run_sweep(self, *args, **kwargs):
        """The timer's sweep, now, at ``now`` if given (tests and operators move the clock)."""
        query = load_call(contract.RunSweep(), args, kwargs)
        now = domain.parse(query["now"]) if query["now"] else self.clock.now()
        return sweep(self.callbacks, self.log.store, self.log, self.principal, self.config.rules, now)

    @leased_timer(SWEEP_LEASE, interval=DEFAULT_TIMER_SECONDS, config_key=TIMER_SECONDS_KEY)
    def sweep_tick(self):
        """Pool returns and periodic callbacks; only on the replica holding the lease."""
        self.principal = TIMER_PRINCIPAL
        sweep(self.callbacks, self.log.store, self.log, TIMER_PRINCIPAL, self.config.rules, self.clock.now())

    # -- helpers -----------------------------------------------------------------

    def _customer(self, customer_id: str):
        """The customer as this service knows them; on a miss, pull the customers' log once first."""
        engine = self.log.store.engine
        known = customer(engine, customer_id)
        if known is None:
            try:
                self.log.provider.pull_upstreams()  # registered a moment ago: its event may be on its way
            except Exception:  # noqa: BLE001 - customers unreachable: decide on what we know
                pass
            known = customer(engine, customer_id)
        domain.require_callable(customer_id, known)
        return known

    def _schedule_picked(self, command: dict, entry: dict, customer_row: dict) -> dict:
        """One sampled customer's callback; named by the whole input, so a repeated sample schedules nothing new.

        The caller's ``command_id`` is left out on purpose: clients send a
        fresh one with every call, and a repeat must still find the first pick.
        """
        batch = canonical_json({name: sorted(command["customer_ids"]) if name == "customer_ids" else command[name]
                                for name in ("kind", "customer_ids", "rate", "priority")})
        one = {"customer_id": entry["customer_id"], "kind": command["kind"], "due_at": None,
               "priority": command["priority"], "assignee": None,
               "command_id": derived_command_id("sample", batch, entry["customer_id"])}
        why = {name: entry[name] for name in ("rank", "score", "population", "rate", "required", "reason")}
        now, rules = self.clock.now(), self.config.rules
        answer = self.callbacks.create(str(uuid.uuid5(_SAMPLED_CALLBACKS, one["command_id"])), one, lambda state: (
            domain.decide_schedule(state.callback_id, one, customer_row, now, rules, origin="sample", sample=why)))
        return {"callback_id": answer["callback_id"], "due_at": answer["due_at"]}

    def _record_read(self, state: domain.Callback, shown: list[str], method: str) -> None:
        if shown:
            self.log.append(self.principal, domain.access_stream_of(state.callback_id), [domain.text_access(
                state, shown, method)], None)
