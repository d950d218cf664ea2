"""``crm complaints ...``: the complaints service from the shell.

Arguments are checked by the service's own schemas (one set of rules for
every caller); the CLI only shapes them and prints the answer: a record for
one complaint with its history as a table, a table for lists, and the
figures of ``stats`` as a summary plus counts. ``--json`` prints the answer
as it came.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from shared.cli import rpc
from shared.cli.rpc import emit, print_json, print_record, print_table, rpc_call

app = typer.Typer(help="Complaints (投诉): file, classify, assign, track, escalate (上报), resolve, confirm; "
                       "SLA on the China working calendar.", no_args_is_help=True)

LIST_COLUMNS = [("complaint_id", "complaint"), ("status", "status"), ("escalation_level", "level"),
                ("priority", "priority"), ("category", "category"), ("assignee", "assignee"),
                ("summary", "summary"), ("breached", "breached"), ("filed_at", "filed"), ("version", "v")]
SHOW_FIELDS = ("complaint_id", "status", "escalation_level", "priority", "category", "urgency", "channel",
               "customer_id", "assignee", "summary", "description", "resolution", "first_reply_due",
               "next_reply_due", "resolution_due", "sla", "waiting_on_customer_since", "breaches", "filed_at",
               "resolved_at", "closed_at", "close_reason", "reopen_count", "satisfied", "score",
               "related_complaint_id", "callback_id", "allowed_actions", "version")
HISTORY_COLUMNS = [("at", "at"), ("type", "event"), ("who", "by"), ("note", "note"), ("text", "text")]


def _call(method: str, **kwargs) -> Any:
    return rpc_call("complaints", method, **{key: value for key, value in kwargs.items() if value is not None})


@app.command("file")
def file_complaint(customer_id: str,
                   summary: str = typer.Option(..., help="One line, up to 200 characters"),
                   description: str = typer.Option(..., help="What happened, in the customer's words"),
                   channel: str = typer.Option("phone", help="phone | online | email | walk_in"),
                   category: str = typer.Option("other", help="product_inquiry 产品咨询 | after_sales 售后服务 | "
                                                              "technical_support 技术支持 | service_attitude | "
                                                              "billing | other"),
                   urgency: str = typer.Option("medium", help="low | medium | high | critical"),
                   related: Optional[str] = typer.Option(None, help="An earlier complaint this one follows up"),
                   command_id: Optional[str] = typer.Option(None, help="Idempotency key")):
    """Record a complaint; prints its priority and SLA due times."""
    emit(_call("file", customer_id=customer_id, channel=channel, category=category, summary=summary,
               description=description, urgency=urgency, related_complaint_id=related, command_id=command_id))


@app.command()
def show(complaint_id: str):
    """One complaint: status, SLA due times, breaches and its history."""
    view = _call("get", complaint_id=complaint_id)
    if rpc.state.json_output:
        print_json(view)
        return
    record = {key: _readable(key, view.get(key)) for key in SHOW_FIELDS if view.get(key) not in (None, [], {})}
    print_record(record, title=f"complaint {view['complaint_id']}")
    history = [{**entry, "at": _minutes(entry["at"]), "who": f"{entry['actor']['id']} ({entry['actor']['role']})"}
               for entry in view["history"]]
    print_table(history, HISTORY_COLUMNS, title="history")


@app.command("list")
def list_complaints(status: Optional[str] = typer.Option(None, help="open | assigned | in_progress | "
                                                                     "waiting_on_customer | resolved | reopened | closed"),
                    assignee: Optional[str] = None, category: Optional[str] = None,
                    priority: Optional[str] = typer.Option(None, help="critical | high | normal | low"),
                    breached: Optional[bool] = typer.Option(None, "--breached/--not-breached"),
                    customer: Optional[str] = typer.Option(None, help="Customer id"),
                    page: int = 1, page_size: int = 50):
    """Complaints, newest first."""
    result = _call("list", status=status, assignee=assignee, category=category, priority=priority,
                   breached=breached, customer_id=customer, page=page, page_size=page_size)
    rows = [{**item, "filed_at": _minutes(item.get("filed_at"))} for item in result["items"]]
    print_table(rows, LIST_COLUMNS,
                title=f"page {result['page']} · {len(result['items'])} of {result['total']}")


@app.command()
def classify(complaint_id: str, category: str, priority: str, expected_version: Optional[int] = None,
             command_id: Optional[str] = None):
    """Set category and priority (supervisors)."""
    emit(_call("classify", complaint_id=complaint_id, category=category, priority=priority,
               expected_version=expected_version, command_id=command_id))


@app.command()
def assign(complaint_id: str, agent: str, expected_version: Optional[int] = None,
           command_id: Optional[str] = None):
    """Assign or reassign to an agent (supervisors)."""
    emit(_call("assign", complaint_id=complaint_id, agent=agent, expected_version=expected_version,
               command_id=command_id))


@app.command()
def respond(complaint_id: str, message: str, expected_version: Optional[int] = None,
            command_id: Optional[str] = None):
    """Reply to the customer (also resumes the SLA clock after a question)."""
    emit(_call("respond", complaint_id=complaint_id, message=message, expected_version=expected_version,
               command_id=command_id))


@app.command("request-info")
def request_info(complaint_id: str, question: str, expected_version: Optional[int] = None,
                 command_id: Optional[str] = None):
    """Ask the customer; the SLA clock pauses until they answer."""
    emit(_call("request_info", complaint_id=complaint_id, question=question, expected_version=expected_version,
               command_id=command_id))


@app.command("customer-replied")
def customer_replied(complaint_id: str, message: str, expected_version: Optional[int] = None,
                     command_id: Optional[str] = None):
    """Record the customer's answer; the SLA clock runs again."""
    emit(_call("customer_replied", complaint_id=complaint_id, message=message, expected_version=expected_version,
               command_id=command_id))


@app.command()
def escalate(complaint_id: str, reason: str = typer.Option(...), expected_version: Optional[int] = None,
             command_id: Optional[str] = None):
    """上报: one escalation level up, with a reason."""
    emit(_call("escalate", complaint_id=complaint_id, reason=reason, expected_version=expected_version,
               command_id=command_id))


@app.command()
def resolve(complaint_id: str, resolution: str = typer.Option(...), expected_version: Optional[int] = None,
            command_id: Optional[str] = None):
    """Resolve with the resolution told to the customer."""
    emit(_call("resolve", complaint_id=complaint_id, resolution=resolution, expected_version=expected_version,
               command_id=command_id))


@app.command()
def confirm(complaint_id: str,
            satisfied: bool = typer.Option(..., "--satisfied/--not-satisfied", help="Closes, or reopens"),
            score: Optional[int] = typer.Option(None, help="1-5; asked once per complaint"),
            expected_version: Optional[int] = None, command_id: Optional[str] = None):
    """The customer's confirmation: satisfied closes the complaint, not satisfied reopens it."""
    emit(_call("confirm", complaint_id=complaint_id, satisfied=satisfied, score=score,
               expected_version=expected_version, command_id=command_id))


@app.command()
def reopen(complaint_id: str, reason: str = typer.Option(...), expected_version: Optional[int] = None,
           command_id: Optional[str] = None):
    """Reopen a resolved complaint (a closed one is final: file a new one with --related)."""
    emit(_call("reopen", complaint_id=complaint_id, reason=reason, expected_version=expected_version,
               command_id=command_id))


@app.command()
def stats(since: Optional[str] = typer.Option(None, help="YYYY-MM-DD or ISO time; filed at or after"),
          until: Optional[str] = typer.Option(None, help="YYYY-MM-DD or ISO time; filed before")):
    """Counts, reply and resolution times, SLA compliance, resolution, reopen and satisfaction rates."""
    figures = _call("stats", since=since, until=until)
    if rpc.state.json_output:
        print_json(figures)
        return
    print_record(headline(figures), title="complaints " + _period(figures))
    counts = [{"group": "category", "name": name, "count": count} for name, count in figures["by_category"].items()]
    counts += [{"group": "status", "name": name, "count": count} for name, count in figures["by_status"].items()]
    print_table([row for row in counts if row["count"]], ["group", "name", "count"], title="counts")


@app.command("sla-check")
def sla_check(now: Optional[str] = typer.Option(None, help="ISO time with offset; default the service's clock")):
    """Run the SLA timer's sweep now (admin)."""
    emit(_call("run_sla_check", now=now))


def headline(figures: dict[str, Any]) -> dict[str, Any]:
    """The one-screen summary of ``stats``: percentages and hours, blanks where nothing was measured."""
    def spread(name: str) -> str | None:
        value = figures[name]
        return None if not value["count"] else f"median {value['median']} h · p90 {value['p90']} h (n={value['count']})"

    def pct(name: str) -> str | None:
        return None if figures[name] is None else f"{figures[name]} %"

    satisfaction = figures["satisfaction"]
    return {
        "complaints": figures["total"],
        "first reply": spread("first_reply_hours"),
        "resolution": spread("resolution_hours"),
        "SLA compliance": pct("sla_compliance_pct"),
        "resolution rate": pct("resolution_rate_pct"),
        "reopen rate": pct("reopen_rate_pct"),
        "satisfaction": None if satisfaction["average_score"] is None
        else f"{satisfaction['average_score']} / 5 (n={satisfaction['scored']})",
        "satisfied": None if satisfaction["satisfied_pct"] is None else f"{satisfaction['satisfied_pct']} %",
    }


def _minutes(moment: str | None) -> str | None:
    """``2024-03-18T02:00:00.000000Z`` → ``2024-03-18 02:00Z``: a table needs no seconds."""
    return None if not moment else f"{moment[:10]} {moment[11:16]}Z"


def _readable(key: str, value: Any) -> Any:
    return _minutes(value) if isinstance(value, str) and key.endswith(("_at", "_due", "_since")) else value


def _period(figures: dict[str, Any]) -> str:
    return f"filed {figures['since'] or 'any time'} – {figures['until'] or 'now'}"
