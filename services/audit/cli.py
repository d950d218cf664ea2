"""``crm audit ...``: the auditor's commands.

Every command but two calls the running audit service with the caller's
token (auditor or admin). ``verify-export`` needs nothing running: it
checks a bundle file with the audit's public key alone. ``pubkey`` prints
the audit's public key from the configuration (``CRM_SERVICE_KEYS``, or the
development key in the data dir), not from the service it is meant to
check; ``--from-service`` asks the service instead, to compare.
``replay --format jsonl`` pages through the ledger and writes one entry per
line, with a progress bar on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.audit.checkpoint import verifier_key
from services.audit.export import load_public_key, verify_bundle
from shared.cli import rpc
from shared.cli.rpc import cli_settings, emit, err_console, fail, print_json, print_record, print_table, rpc_call
from shared.errors import ValidationError

app = typer.Typer(help="Audit (合规检查, 监督与审计): replay the ledger, rebuild a customer as of a time, verify, "
                       "sign checkpoints, export evidence and check it offline.", no_args_is_help=True)

ENTRY_COLUMNS = [("ledger_position", "#"), ("recorded_at", "recorded"), ("service", "service"), ("type", "event"),
                 ("stream_id", "stream"), ("actor", "by"), ("customer_id", "customer")]
PAGE = 1000


def _call(method: str, **kwargs) -> Any:
    return rpc_call("audit", method, **{key: value for key, value in kwargs.items() if value is not None})


def _filters(service, stream, customer, event_type, since, until) -> dict[str, Any]:
    given = {"service": service, "stream_id": stream, "customer_id": customer, "type": event_type,
             "since": since, "until": until}
    return {key: value for key, value in given.items() if value is not None}


def _rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**entry, "actor": f"{entry['actor'].get('id')} ({entry['actor'].get('role')})"} for entry in entries]


SERVICE = typer.Option(None, "--service", help="Only this producer's events")
STREAM = typer.Option(None, "--stream", help="Only this stream (e.g. customer-<id>)")
CUSTOMER = typer.Option(None, "--customer", help="Only events about this customer")
TYPE = typer.Option(None, "--type", help="Only this event type")
SINCE = typer.Option(None, "--since", help="Recorded at or after (ISO 8601 with offset)")
UNTIL = typer.Option(None, "--until", help="Recorded at or before (ISO 8601 with offset)")


@app.command()
def replay(service: Optional[str] = SERVICE, stream: Optional[str] = STREAM, customer: Optional[str] = CUSTOMER,
           event_type: Optional[str] = TYPE, since: Optional[str] = SINCE, until: Optional[str] = UNTIL,
           cursor: int = typer.Option(0, help="Start after this ledger position"),
           limit: int = typer.Option(50, help="Entries per page (table format: one page)"),
           output_format: str = typer.Option("table", "--format", help="table | jsonl (every page, streamed)")):
    """Every event in ledger order, filtered; jsonl streams all of them with a progress bar."""
    filters = _filters(service, stream, customer, event_type, since, until)
    if output_format == "table":
        page = _call("replay", filters=filters, cursor=cursor, limit=limit)
        if rpc.state.json_output:
            print_json(page)
            return
        print_table(_rows(page["entries"]), ENTRY_COLUMNS,
                    title=f"ledger after {cursor} (next cursor {page['next_cursor']}, head {page['head']})")
        return
    if output_format != "jsonl":
        fail("--format: use table or jsonl", 2)
    _stream_jsonl(filters, cursor, min(max(limit, PAGE), 5000))


def _stream_jsonl(filters: dict[str, Any], cursor: int, page_size: int) -> None:
    """Page through the ledger up to its head as it was at the start; one JSON line per entry."""
    first = _call("replay", filters=filters, cursor=cursor, limit=page_size)
    head = first["head"]
    columns = [TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("ledger positions"),
               TimeElapsedColumn()]
    with Progress(*columns, console=err_console(), transient=False) as progress:
        task = progress.add_task("replay", total=max(head - cursor, 0))
        page = first
        while True:
            for entry in page["entries"]:
                if entry["ledger_position"] > head:
                    progress.update(task, completed=head - cursor)
                    return
                sys.stdout.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
            progress.update(task, completed=min(page["next_cursor"], head) - cursor)
            if not page["more"] or page["next_cursor"] >= head:
                progress.update(task, completed=max(head - cursor, 0))
                return
            page = _call("replay", filters=filters, cursor=page["next_cursor"], limit=page_size)


@app.command()
def history(customer_id: str):
    """A customer's whole timeline across every service."""
    answer = _call("customer_history", customer_id=customer_id)
    if rpc.state.json_output:
        print_json(answer)
        return
    print_table(_rows(answer["entries"]), ENTRY_COLUMNS, title=f"customer {customer_id}")


@app.command("as-of")
def as_of(customer_id: str, at: str = typer.Argument(..., help="ISO 8601 time with offset, e.g. 2026-03-02T09:30:00+08:00")):
    """The customer's record as it was at that instant (personal data stays sealed)."""
    answer = _call("state_as_of", customer_id=customer_id, at=at)
    if rpc.state.json_output:
        print_json(answer)
        return
    print_record(answer["record"], title=f"customer {customer_id} as of {answer['at']} "
                                         f"({answer['events']} events)")


@app.command()
def verify(from_position: int = typer.Option(1, "--from", help="First ledger position"),
           to_position: Optional[int] = typer.Option(None, "--to", help="Last ledger position"),
           every_signature: bool = typer.Option(False, help="Check every producer signature, not a sample"),
           sources: bool = typer.Option(True, help="Also hold each source's log against the ledger")):
    """Recompute the ledger's and each source's chain; exit 1 naming the first bad position."""
    report = _call("verify", from_position=from_position, to_position=to_position,
                   every_signature=every_signature, sources=sources)
    emit(report)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def checkpoint():
    """Sign the ledger's tree head now (size, RFC 6962 root, time); prints it with its signed note."""
    answer = _call("checkpoint")
    if rpc.state.json_output:
        print_json(answer)
        return
    print_record({key: value for key, value in answer.items() if key != "note"}, title="checkpoint")
    typer.echo(answer["note"], nl=False)


@app.command()
def export(output: Path = typer.Option(..., "--output", "-o", help="Bundle file to write"),
           service: Optional[str] = SERVICE, stream: Optional[str] = STREAM, customer: Optional[str] = CUSTOMER,
           event_type: Optional[str] = TYPE, since: Optional[str] = SINCE, until: Optional[str] = UNTIL,
           limit: int = typer.Option(10_000, help="At most this many entries")):
    """Write a signed evidence bundle of the filtered entries (check it with verify-export)."""
    bundle = _call("export", filters=_filters(service, stream, customer, event_type, since, until), limit=limit)
    output.write_text(json.dumps(bundle, ensure_ascii=False, indent=1), encoding="utf-8")
    emit({"file": str(output), "entries": bundle["manifest"]["count"], "tree_size": bundle["checkpoint"]["tree_size"],
          "root_hash": bundle["checkpoint"]["root_hash"]})


@app.command("verify-export")
def verify_export(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A bundle from crm audit export"),
                  pubkey: str = typer.Option(..., "--pubkey", help="The audit's public key, or a file holding it")):
    """Check a bundle offline (no broker, no database); exit 1 naming the first bad entry."""
    text = Path(pubkey).read_text() if Path(pubkey).is_file() else pubkey
    try:
        key = load_public_key(text)
        bundle = json.loads(file.read_text(encoding="utf-8"))
        report = verify_bundle(bundle, key)
    except json.JSONDecodeError as error:
        fail(f"{file}: not JSON ({error})", 2)
    except ValidationError as error:
        fail(f"{file}: not an audit bundle: {json.dumps(error.fields, ensure_ascii=False)}", 2)
    emit(report)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def pubkey(from_service: bool = typer.Option(False, help="Ask the running audit service instead of the config")):
    """The public key that checkpoints and exports are signed with (base64), and its signed-note verifier key."""
    if from_service:
        answer = _call("pubkey")
    else:
        settings = cli_settings()
        keys = settings.signing.public_texts().get("audit")
        if not keys:
            fail("no public key for audit in CRM_SERVICE_KEYS", 2)
        answer = {"public_key": keys[-1], "verifier_key": verifier_key(load_public_key(keys[-1]))}
    if rpc.state.json_output:
        print_json(answer)
        return
    typer.echo(answer["public_key"])
    err_console().print(f"signed-note verifier key: {answer['verifier_key']}")
