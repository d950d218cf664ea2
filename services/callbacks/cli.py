"""``crm callbacks ...``: follow-up calls (回访) from the shell.

Arguments are checked by the service's own schemas; the CLI only shapes
them and prints the answer: a table for an agent's queue and a sample, a
summary plus per-agent, per-kind and per-day tables for the KPIs, with what
falls short of its target marked. ``--json`` prints the answer as it came.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from shared.cli import rpc
from shared.cli.rpc import emit, print_json, print_record, print_table, rpc_call

app = typer.Typer(help="Callbacks (回访): schedule, sample lost deals, work the queue, record calls, KPIs "
                       "(success rate ≥ 95 %, 规范率 ≥ 90 %).", no_args_is_help=True)

DUE_COLUMNS = [("callback_id", "callback"), ("kind", "kind"), ("due_at", "due"), ("priority", "priority"),
               ("assignee", "assignee"), ("attempts", "attempts"), ("customer_id", "customer")]
KPI_COLUMNS = [("key", ""), ("callbacks_attempted", "attempted"), ("callbacks_reached", "reached"),
               ("success_rate_pct", "success %"), ("compliance_pct", "规范率 %"),
               ("average_satisfaction", "satisfaction"), ("short", "short of target")]


def _call(method: str, **kwargs) -> Any:
    return rpc_call("callbacks", method, **{key: value for key, value in kwargs.items() if value is not None})


@app.command()
def schedule(customer_id: str,
             kind: str = typer.Option(..., help="satisfaction | maintenance_reminder | lost_customer | lost_deal | "
                                                "periodic"),
             due: Optional[str] = typer.Option(None, help="ISO time with offset; default now (moved into the "
                                                          "customer's calling window)"),
             priority: str = typer.Option("normal", help="urgent | high | normal | low"),
             assignee: Optional[str] = typer.Option(None, help="An agent; default the team pool"),
             command_id: Optional[str] = typer.Option(None, help="Idempotency key")):
    """Schedule a callback; says so if the due time was moved into the calling window."""
    emit(_call("schedule", customer_id=customer_id, kind=kind, due_at=due, priority=priority, assignee=assignee,
               command_id=command_id))


@app.command()
def due(before: Optional[str] = typer.Option(None, help="ISO time with offset; default now"),
        assignee: Optional[str] = typer.Option(None, help="An agent's queue (agents: their own)"),
        pool: bool = typer.Option(True, "--pool/--no-pool", help="Include the team pool"),
        kind: Optional[str] = typer.Option(None, help="Only callbacks of this kind"),
        limit: int = 100):
    """The queue: pending callbacks due before a time, by due time and priority."""
    result = _call("list_due", before=before, assignee=assignee, include_pool=pool, kind=kind, limit=limit)
    if rpc.state.json_output:
        print_json(result)
        return
    print_table(result["items"], DUE_COLUMNS, title=f"due before {result['before']} · {len(result['items'])}")


@app.command()
def record(callback_id: str,
           outcome: str = typer.Option(..., help="reached | no_answer | busy | wrong_number | refused | voicemail"),
           satisfaction: Optional[int] = typer.Option(None, help="1-5, reached calls only"),
           script_followed: Optional[bool] = typer.Option(None, "--script-followed/--script-not-followed",
                                                          help="规范: reached calls only"),
           notes: Optional[str] = None,
           issue: Optional[str] = typer.Option(None, help="A problem found: filed as a complaint"),
           issue_category: Optional[str] = typer.Option(None, help="The complaint category of the issue"),
           expected_version: Optional[int] = None, command_id: Optional[str] = None):
    """Record one call attempt."""
    emit(_call("record_attempt", callback_id=callback_id, outcome=outcome, satisfaction=satisfaction,
               script_followed=script_followed, notes=notes, issue=issue, issue_category=issue_category,
               expected_version=expected_version, command_id=command_id))


@app.command()
def sample(customer_ids: list[str] = typer.Argument(..., help="The population, e.g. the lost deals' customers"),
           kind: str = typer.Option("lost_deal"), rate: float = typer.Option(0.15, help="At least this share"),
           command_id: Optional[str] = None):
    """战败回访: schedule callbacks for at least a share of the customers, reproducibly, saying why each."""
    result = _call("sample", kind=kind, customer_ids=customer_ids, rate=rate, command_id=command_id)
    if rpc.state.json_output:
        print_json(result)
        return
    print_table(result["picked"], ["customer_id", "callback_id", "rank", "reason"],
                title=f"picked {len(result['picked'])} of {result['population']} ({result['share_pct']} %)")
    if result["skipped"]:
        print_table(result["skipped"], ["customer_id", "rank", "reason"], title="skipped")


@app.command()
def kpis(since: str = typer.Option(..., help="YYYY-MM-DD or ISO time"),
         until: str = typer.Option(..., help="YYYY-MM-DD or ISO time (exclusive)")):
    """Success rate, 规范率 and satisfaction, per agent, kind and day, against their targets."""
    figures = _call("kpis", since=since, until=until)
    if rpc.state.json_output:
        print_json(figures)
        return
    print_record({name: figures[name] for name in ("since", "until", "callbacks_attempted", "callbacks_reached",
                                                   "success_rate_pct", "compliance_pct", "average_satisfaction")},
                 title="callback KPIs")
    for scope in ("per_agent", "per_kind", "per_day"):
        rows = [{**row, "key": key, "short": _short(row)} for key, row in figures[scope].items()]
        print_table(rows, KPI_COLUMNS, title=scope.replace("_", " "))


def _short(row: dict[str, Any]) -> str:
    return ", ".join(name for name, met in (("success", row["meets_success_target"]),
                                            ("规范", row["meets_compliance_target"])) if met is False)
