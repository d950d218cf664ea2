"""What the callbacks service does on other services' events, once per event.

* ``ComplaintResolved`` → a satisfaction callback (满意度回访), due at the next
  open moment of the customer's calling window, i.e. within one working day.
  One per resolution: the callback's id and the command id derive from the
  event, so a redelivery or a retry after a crash schedules nothing more.
* ``ConsentWithdrawn`` (purpose ``callbacks``) and ``CustomerErased`` →
  every pending callback of the customer is cancelled, with the reason.

Both are reactions (``shared.consumers``): a rebuild never runs them again.
Their effects are commands on the callbacks' own log, run before the
transaction that tracks the event (``acts_on``), through the one command
path (``shared.commands.ReactionCommands``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from services.callbacks import domain
from services.callbacks.aggregate import CALLBACK
from services.callbacks.known_customers import customer, is_callable
from services.callbacks.projection import callback_complaints, callback_list
from services.callbacks.rules import CONFIG_KEY, load_rules
from shared.auth import Principal
from shared.clock import container_now
from shared.commands import ReactionCommands, reaction_command_id
from shared.consumers import Reaction, acts_on
from shared.eventstore.envelope import Envelope

SERVICE_PRINCIPAL = Principal("callbacks", "service")
_SATISFACTION_CALLBACKS = uuid.UUID("a3c1d6a4-61a4-4f57-8f3e-6f1e8b0c2d90")


def satisfaction_callback_id(resolved_event_id: str) -> str:
    """The id of the satisfaction callback scheduled for one ``ComplaintResolved`` event."""
    return str(uuid.uuid5(_SATISFACTION_CALLBACKS, resolved_event_id))


class _CallbackReaction(Reaction):
    """Runs callback commands as the service itself, at the service clock's time, under its rules."""

    _rules: domain.Rules | None = None

    def rules(self) -> domain.Rules:
        if self._rules is None:
            self._rules = load_rules(self.log.container.config.get(CONFIG_KEY))
        return self._rules

    def now(self) -> datetime:
        return container_now(self.log.container)

    def commands(self, method: str, envelope: Envelope) -> ReactionCommands:
        return ReactionCommands(CALLBACK, self.log, SERVICE_PRINCIPAL, method, envelope)


class ScheduleSatisfactionCallback(_CallbackReaction):
    name = "callbacks.satisfaction"

    @acts_on("complaints", "ComplaintResolved")
    def schedule_after_resolution(self, envelope: Envelope) -> None:
        complaint_id = envelope.data["complaint_id"]
        engine = self.log.store.engine
        with engine.connect() as connection:
            customer_id = connection.execute(select(callback_complaints.c.customer_id).where(
                callback_complaints.c.complaint_id == complaint_id)).scalar()
        if customer_id is None:  # its ComplaintFiled is not applied yet: the retry finds it
            raise LookupError(f"complaint {complaint_id} is not known to the callbacks service yet")
        known = customer(engine, customer_id)
        if known is None:
            raise LookupError(f"customer {customer_id} is not known to the callbacks service yet")
        if not is_callable(known):
            return  # erased or no consent: no call, and nothing to record
        now, rules = self.now(), self.rules()
        if domain.too_late_to_ask(envelope.occurred_at, now, rules):
            return  # an old resolution (a first start on an existing complaints log): too late to ask
        command = {"customer_id": customer_id, "kind": "satisfaction", "due_at": envelope.occurred_at,
                   "priority": "high", "assignee": None, "command_id": reaction_command_id(self.name, envelope)}
        self.commands("schedule", envelope).create(
            satisfaction_callback_id(envelope.event_id), command,
            lambda state: domain.decide_schedule(state.callback_id, command, known, now, rules,
                                                 origin="complaint_resolved", complaint_id=complaint_id))


class CancelWhenNotCallable(_CallbackReaction):
    name = "callbacks.cancel-not-callable"

    @acts_on("customers", "ConsentWithdrawn", "CustomerErased")
    def cancel_pending(self, envelope: Envelope) -> None:
        if envelope.type == "ConsentWithdrawn" and envelope.data["purpose"] != "callbacks":
            return
        reason = "consent_withdrawn" if envelope.type == "ConsentWithdrawn" else "customer_erased"
        self.log.catch_up()  # callbacks scheduled a moment ago are in the list before it is read
        with self.log.store.engine.connect() as connection:
            pending = list(connection.execute(select(callback_list.c.callback_id).where(
                callback_list.c.customer_id == envelope.data["customer_id"],
                callback_list.c.status == domain.OPEN).order_by(callback_list.c.callback_id)).scalars())
        now = self.now()
        for callback_id in pending:
            command = {"callback_id": callback_id, "reason": reason,
                       "command_id": reaction_command_id(self.name, envelope, callback_id)}
            self.commands("cancel", envelope).change(
                callback_id, command, lambda state: domain.decide_cancel_if_open(state, reason, now))
