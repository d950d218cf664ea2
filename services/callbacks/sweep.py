"""The callbacks sweep: what the timer (and an admin's ``run_sweep``) runs.

Two duties, on the one replica holding the lease ``callbacks.sweep``:

* an assigned callback overdue by more than ``return_to_pool_after`` goes
  back to the team pool (``CallbackReturnedToPool``), so it does not wait
  for an agent who is away; the append is guarded by the stream version, so
  a command that changed the callback meanwhile wins and the next sweep
  decides again;
* each tier's periodic rule (定期回访, e.g. partners monthly) schedules one
  periodic callback per callable customer of the tier and period. The
  command id names the tier, the rule's interval, the period and the
  customer, so however often the sweep runs, a period gets one callback.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.callbacks import domain
from services.callbacks.known_customers import callable_customers_of_tier
from services.callbacks.projection import callback_list
from shared.auth import Principal
from shared.commands import derived_command_id
from shared.errors import Conflict

SWEEP_LEASE = "callbacks.sweep"
TIMER_PRINCIPAL = Principal("callbacks-timer", "service")
_PERIODIC_CALLBACKS = uuid.UUID("0b5e3f0e-8f7d-4a55-9a1e-3c7b9d2e4f61")


def sweep(callbacks, rule_store, worker_log, principal: Principal, rules: domain.Rules, now: datetime,
          ) -> dict[str, Any]:
    """Return overdue callbacks to the pool and schedule the periodic ones due at ``now``."""
    return {"now": domain.iso(now), "returned_to_pool": return_overdue(callbacks, worker_log, principal, rules, now),
            "periodic_ensured": schedule_periodic(callbacks, rule_store, worker_log, rules, now)}


def return_overdue(callbacks, worker_log, principal: Principal, rules: domain.Rules, now: datetime) -> int:
    cutoff = domain.iso(now - rules.return_to_pool_after)
    with worker_log.store.engine.connect() as connection:
        overdue = list(connection.execute(select(callback_list.c.callback_id).where(
            callback_list.c.status == domain.OPEN, callback_list.c.assignee.is_not(None),
            callback_list.c.due_at < cutoff).order_by(callback_list.c.due_at)).scalars())
    returned = 0
    for callback_id in overdue:
        state = callbacks.load(callback_id)
        events = domain.decide_return_to_pool(state, now, rules)
        if not events:
            continue
        try:
            worker_log.append(principal, domain.stream_of(callback_id), events, state.version)
        except Conflict:  # changed meanwhile: the next sweep decides again
            continue
        returned += 1
    return returned


def schedule_periodic(callbacks, rule_store, worker_log, rules: domain.Rules, now: datetime) -> int:
    """Make sure each callable customer of a tier with a rule has its callback of the current period.

    The callbacks already in the list are skipped with one query per batch,
    so a quiet tick over many customers costs a few reads, not a command each.
    """
    ensured = 0
    engine = worker_log.store.engine
    for tier, rule in sorted(domain.fold_rules(rule_store.read_stream(domain.RULES_STREAM)).items()):
        if rule["every_days"] <= 0:
            continue
        period = domain.periodic_period(now, rule["every_days"])
        owed = {}
        for row in callable_customers_of_tier(engine, tier):
            command_id = derived_command_id("periodic", tier, str(rule["every_days"]), str(period), row["customer_id"])
            owed[str(uuid.uuid5(_PERIODIC_CALLBACKS, command_id))] = (command_id, row)
        ensured += len(owed)
        for callback_id in _not_listed(engine, list(owed)):
            command_id, row = owed[callback_id]
            command = {"customer_id": row["customer_id"], "kind": "periodic", "due_at": None,
                       "priority": rule["priority"], "assignee": None, "command_id": command_id}
            try:
                callbacks.create(callback_id, command,
                                 lambda state: domain.decide_schedule(state.callback_id, command, row, now,
                                                                      rules, origin="periodic"))
            except Conflict:  # the timer made it, and this is run_sweep (or the other way round): it exists
                pass
    return ensured


def _not_listed(engine, callback_ids: list[str], batch: int = 500) -> list[str]:
    """Those of ``callback_ids`` the callback list does not hold (yet)."""
    missing = []
    with engine.connect() as connection:
        for start in range(0, len(callback_ids), batch):
            chunk = callback_ids[start:start + batch]
            listed = set(connection.execute(select(callback_list.c.callback_id)
                                            .where(callback_list.c.callback_id.in_(chunk))).scalars())
            missing.extend(callback_id for callback_id in chunk if callback_id not in listed)
    return missing
