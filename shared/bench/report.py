"""The bench's result: one JSON object, or a readable table of the same figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    digits: int = 0
    target: float | None = None  # the figure must be at least this (docs/architecture.md, "Figures")


FIGURES = (
    Figure("append_sqlite_per_s", "append, SQLite (ours)", "commands/s"),
    Figure("peer_append_sqlite_per_s", "append, SQLite (eventsourcing)", "commands/s"),
    Figure("append_vs_peer_sqlite", "ours / eventsourcing, SQLite", "×", 2, 2.0),
    Figure("append_sqlite_full_sync_per_s", "append, SQLite (ours, synchronous=FULL)", "commands/s"),
    Figure("append_vs_peer_sqlite_full_sync", "ours FULL / eventsourcing, SQLite", "×", 2),
    Figure("append_postgres_per_s", "append, PostgreSQL (ours)", "commands/s"),
    Figure("peer_append_postgres_per_s", "append, PostgreSQL (eventsourcing)", "commands/s"),
    Figure("append_vs_peer_postgres", "ours / eventsourcing, PostgreSQL", "×", 2, 2.0),
    Figure("replay_events_per_s", "replay iter_since(0), SQLite", "events/s", 0, 100_000),
    Figure("verify_events_per_s", "verify hash chain, sampled signatures, SQLite", "events/s", 0, 150_000),
    Figure("verify_every_signature_events_per_s", "verify hash chain, every signature, SQLite", "events/s"),
    Figure("sign_us_per_event", "sign an event hash (Ed25519)", "µs", 1),
    Figure("check_us_per_event", "check a received event (hash, signature)", "µs", 1),
    Figure("noop_rpc_per_s", "no-op RPC", "calls/s"),
    Figure("register_rpc_per_s", "register RPC", "calls/s"),
    Figure("register_vs_noop", "register / no-op", "×", 2, 0.5),
    Figure("register_to_visible_ms_p50", "register → visible in find(), p50", "ms", 1),
    Figure("register_to_visible_ms_p99", "register → visible in find(), p99", "ms", 1),
    Figure("complaint_commands_per_s", "complaint commands (file + respond) RPC", "calls/s"),
    Figure("complaint_file_to_visible_ms_p50", "file → visible in list(), p50", "ms", 1),
    Figure("complaint_file_to_visible_ms_p99", "file → visible in list(), p99", "ms", 1),
    Figure("customer_to_complaints_ms_p50", "register → known to complaints, p50", "ms", 1),
    Figure("customer_to_complaints_ms_p99", "register → known to complaints, p99", "ms", 1),
    Figure("callback_attempts_per_s", "callback attempts recorded (record_attempt) RPC", "calls/s"),
    Figure("callback_attempts_vs_noop", "callback attempts / no-op (same part)", "×", 2, 0.5),
    Figure("complaint_resolved_to_callback_due_ms_p50", "resolve → satisfaction callback in list_due(), p50", "ms", 1),
    Figure("complaint_resolved_to_callback_due_ms_p99", "resolve → satisfaction callback in list_due(), p99 "
                                                        "(target < 100)", "ms", 1),
    Figure("campaign_customers", "campaign run: customers greeted", "customers"),
    Figure("campaign_send_per_s", "campaign run, file sink, customers service included", "messages/s", 0, 10_000),
    Figure("campaign_run_s", "campaign run: trigger → completed", "s", 2),
    Figure("campaign_peak_rss_mb", "campaigns process peak memory (should stay under 300)", "MB", 1),
    Figure("campaign_rerun_s", "second run the same day (sends nothing)", "s", 2),
    Figure("campaign_rerun_ratio", "second run / first run (should stay under 0.1)", "×", 3),
    Figure("catch_up_after_consumer_restart_s", "complaints restarted → caught up on 1,000 events", "s", 2),
    Figure("catch_up_after_broker_restart_s", "broker back → both answer, complaints caught up", "s", 2),
    Figure("audit_ingest_events_per_s", "audit ledger ingest, every event checked, SQLite", "events/s", 0, 10_000),
    Figure("audit_replay_events_per_s", "audit ledger replay from the store, SQLite", "events/s", 0, 100_000),
    Figure("audit_verify_events_per_s", "audit ledger verify (source and ledger chains), SQLite", "events/s", 0,
           150_000),
    Figure("audit_replay_vs_store", "audit ledger replay / store replay, same run", "×", 2),
    Figure("audit_verify_vs_store", "audit ledger verify / store verify, same run", "×", 2),
    Figure("audit_ledger_entries", "audit ledger size for replay, verify and proofs", "entries"),
    Figure("audit_checkpoint_ms", "audit signed checkpoint", "ms", 2),
    Figure("audit_inclusion_proof_ms", "audit inclusion proof", "ms", 2),
    Figure("audit_consistency_proof_ms", "audit consistency proof", "ms", 2),
    Figure("audit_rss_mb_at_tenth", "RSS with a tenth of the audit ledger built", "MB", 1),
    Figure("audit_rss_mb_at_full", "RSS with the whole audit ledger built", "MB", 1),
)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def assemble(measured: dict[str, Any], machine: dict[str, Any], notes: list[str], errors: dict[str, str],
             elapsed_s: float, quick: bool) -> dict[str, Any]:
    """Every figure (null when it could not be measured), targets, and how it was measured."""
    values = dict(measured)
    values["append_vs_peer_sqlite"] = ratio(values.get("append_sqlite_per_s"), values.get("peer_append_sqlite_per_s"))
    values["append_vs_peer_postgres"] = ratio(values.get("append_postgres_per_s"),
                                              values.get("peer_append_postgres_per_s"))
    # The ledger's read rates beside the store's own, measured in the same run: on a shared machine the
    # absolute rates drift with the load, the ratios much less.
    values["audit_replay_vs_store"] = ratio(values.get("audit_replay_events_per_s"), values.get("replay_events_per_s"))
    values["audit_verify_vs_store"] = ratio(values.get("audit_verify_events_per_s"), values.get("verify_events_per_s"))
    result: dict[str, Any] = {}
    for figure in FIGURES:
        value = values.pop(figure.key, None)
        result[figure.key] = round(value, max(figure.digits, 1) + 1) if isinstance(value, float) else value
    result["targets"] = {figure.key: {"at_least": figure.target, "met": _met(result[figure.key], figure.target)}
                         for figure in FIGURES if figure.target is not None}
    result["details"] = values
    result["machine"] = machine
    result["quick"] = quick
    result["notes"] = notes
    result["errors"] = errors
    result["elapsed_s"] = round(elapsed_s, 2)
    return result


def _met(value: Any, target: float | None) -> bool | None:
    if target is None or value is None:
        return None
    return value >= target


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2)


def print_table(result: dict[str, Any], console: Console) -> None:
    title = "crm bench" + (" (quick)" if result.get("quick") else "")
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for figure in FIGURES:
        value = result.get(figure.key)
        shown = f"{value:,.{figure.digits}f}" if isinstance(value, (int, float)) else "—"
        target = f"≥ {figure.target:,g}" if figure.target is not None else ""
        met = _met(value, figure.target)
        mark = "" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]")
        table.add_row(figure.label, shown, figure.unit, target, mark)
    console.print(table)
    machine = result["machine"]
    console.print(f"machine: {machine.get('cpu_count')} CPUs, Python {machine.get('python')}, "
                  f"SQLite {machine.get('sqlite')}, PostgreSQL {machine.get('postgres') or '—'}, "
                  f"eventsourcing {machine.get('eventsourcing') or '—'}; took {result['elapsed_s']:.1f} s")
    for note in result["notes"]:
        console.print(f"note: {note}")
    for part, error in result["errors"].items():
        console.print(f"[red]error in {part}:[/red] {error}")
