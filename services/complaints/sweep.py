"""The SLA sweep: what the timer (and an admin's ``run_sla_check``) runs over open complaints.

The timer runs on the one replica holding the lease ``complaints.sla-timer``
(``shared.timers.leased_timer``), but a sweep may still race another: an
admin's ``run_sla_check`` beside the timer, or a command. Each complaint is
loaded from its stream and ``domain.decide_sla_check`` says what to record
at ``now``; the append is guarded by the stream version, so the loser gets
``Conflict``, records nothing, and the next sweep decides again. Every
warning, breach and close is therefore recorded once. A sweep loads only
the complaints that may be due (``schedule``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.complaints import domain
from services.complaints.schedule import due_complaint_ids, note_next_checks
from shared.auth import Principal
from shared.errors import Conflict

SLA_TIMER_LEASE = "complaints.sla-timer"
TIMER_PRINCIPAL = Principal("sla-timer", "service")


def sweep(complaints, worker_log, principal: Principal, rules: domain.Rules, now: datetime) -> dict[str, Any]:
    """Run ``decide_sla_check`` at ``now`` on every open complaint that may be due, and append what it decides.

    ``complaints`` is the worker's complaint repository (``shared.commands``),
    ``worker_log`` its ``WorkerLog``; what is appended is the timer's (or the
    admin's) decision, so it carries ``principal`` and no command id.
    """
    counts = {"checked": 0, "changed": 0, "conflicts": 0}
    recorded: dict[str, int] = {}
    quiet: list[domain.Complaint] = []
    engine = worker_log.store.engine
    for complaint_id in due_complaint_ids(engine, rules, now):
        counts["checked"] += 1
        state = complaints.load(complaint_id)
        events = domain.decide_sla_check(state, now, rules)
        if not events:
            quiet.append(state)
            continue
        try:
            worker_log.append(principal, domain.stream_of(complaint_id), events, state.version)
        except Conflict:  # someone changed it meanwhile: the next sweep decides again
            counts["conflicts"] += 1
            continue
        counts["changed"] += 1
        for event in events:
            recorded[event.type] = recorded.get(event.type, 0) + 1
    note_next_checks(engine, rules, now, quiet)
    return {"now": domain.iso(now), **counts, "recorded": recorded}
