"""``crm campaigns ...``: care campaigns from the shell.

Arguments are checked by the service's own schemas; the CLI only shapes
them and prints the answer. ``trigger --follow`` polls ``run_status`` and
draws a progress bar until the run completes or stops.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from contracts.campaigns import CHANNELS, HOLIDAYS, KINDS
from shared.cli.rpc import emit, err_console, fail, print_table, rpc_call

app = typer.Typer(help="Care campaigns (客户关怀): birthday and holiday greetings.", no_args_is_help=True)

LIST_COLUMNS = ["campaign_id", "name", "kind", "holiday", "channel", "status", "created_at"]
FOLLOW_POLL_SECONDS = 0.5


def _call(method: str, **kwargs):
    return rpc_call("campaigns", method, **{key: value for key, value in kwargs.items() if value is not None})


@app.command()
def create(name: str = typer.Option(...),
           kind: str = typer.Option(..., help=" | ".join(KINDS)),
           holiday: Optional[str] = typer.Option(None, help=" | ".join(HOLIDAYS)),
           template: list[str] = typer.Option([], help="Body for every tier and locale (repeat with --templates)"),
           templates: Optional[Path] = typer.Option(None, help="JSON file: a list of {tier, locale, body}"),
           tier: list[str] = typer.Option([], help="Segment: a tier; repeatable"),
           tag: list[str] = typer.Option([], help="Segment: a tag; repeatable"),
           locale: list[str] = typer.Option([], help="Segment: a locale; repeatable"),
           channel: Optional[str] = typer.Option(None, help=" | ".join(CHANNELS)),
           window_start: Optional[str] = typer.Option(None, help="HH:MM in the customer's time zone"),
           window_end: Optional[str] = typer.Option(None, help="HH:MM; 00:00 is midnight"),
           command_id: Optional[str] = typer.Option(None, help="Idempotency key")):
    """Create a campaign; templates are checked now."""
    bodies = [{"body": body} for body in template]
    if templates is not None:
        try:
            bodies += json.loads(templates.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            fail(f"--templates: {error}")
    window = {key: value for key, value in (("start", window_start), ("end", window_end)) if value}
    emit(_call("create", name=name, kind=kind, holiday=holiday, templates=bodies,
               segment={"tiers": tier, "tags": tag, "locales": locale}, channel=channel,
               send_window=window or None, command_id=command_id))


@app.command("list")
def list_(status: Optional[str] = None, page: int = 1, page_size: int = 50):
    """Campaigns, newest first."""
    result = _call("list", status=status, page=page, page_size=page_size)
    print_table(result["items"], LIST_COLUMNS,
                title=f"page {result['page']} · {len(result['items'])} of {result['total']}")


@app.command()
def get(campaign_id: str):
    """One campaign: its definition and status."""
    emit(_call("get", campaign_id=campaign_id))


@app.command()
def preview(campaign_id: str, on_date: str = typer.Argument(..., help="YYYY-MM-DD"), limit: int = 20):
    """Who would get what on a day, and who would be skipped and why; sends nothing."""
    emit(_call("preview", campaign_id=campaign_id, on_date=on_date, limit=limit))


@app.command()
def trigger(campaign_id: str, on_date: str = typer.Argument(..., help="YYYY-MM-DD"),
            follow: bool = typer.Option(False, "--follow", help="Show a progress bar until the run ends"),
            command_id: Optional[str] = typer.Option(None, help="Idempotency key")):
    """Run the campaign for a day (once per customer and occurrence, however often it is triggered)."""
    started = _call("trigger", campaign_id=campaign_id, on_date=on_date, command_id=command_id)
    if not follow:
        emit(started)
        return
    emit(_follow(started["run_id"]))


@app.command()
def status(run_id: str):
    """A run's progress and counts."""
    emit(_call("run_status", run_id=run_id))


@app.command()
def pause(campaign_id: str):
    """Stop sending; a run in progress stops after its batch."""
    emit(_call("pause", campaign_id=campaign_id))


@app.command()
def resume(campaign_id: str):
    """Send again; stopped runs carry on."""
    emit(_call("resume", campaign_id=campaign_id))


@app.command()
def archive(campaign_id: str):
    """Retire the campaign for good."""
    emit(_call("archive", campaign_id=campaign_id))


def _follow(run_id: str) -> dict:
    """Poll ``run_status`` and draw the customers examined so far until the run ends."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("sent {task.fields[sent]} · failed {task.fields[failed]} · skipped {task.fields[skipped]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console(), transient=False) as progress:
        task = progress.add_task(f"run {run_id[:8]}", total=None, sent=0, failed=0, skipped=0)
        while True:
            state = _call("run_status", run_id=run_id)
            skipped = sum(state["skipped"].values())
            progress.update(task, completed=state["examined"], sent=state["sent"], failed=state["failed"],
                            skipped=skipped)
            if state["status"] != "running":
                progress.update(task, total=state["examined"])
                return state
            time.sleep(FOLLOW_POLL_SECONDS)
