"""``crm bench``: the store part runs and reports what it measured (no performance thresholds)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from shared.bench.report import assemble, to_json
from shared.bench.rpc_figures import percentile, registration
from shared.bench.runner import Options, run_bench
from shared.bench.store_figures import WARM_COMMANDS, sqlite_store_figures
from shared.bench.workload import QUICK
from tests.support import RecordedPhases

SMALL = replace(QUICK, sqlite_commands=620, log_events=2500, build_batch=500)
STORE_FIGURES = ("append_sqlite_per_s", "replay_events_per_s", "verify_events_per_s",
                 "verify_every_signature_events_per_s", "sign_us_per_event", "check_us_per_event")


def test_quick_store_part_prints_json_with_positive_figures():
    result = json.loads(to_json(run_bench(Options(quick=True, parts=("sqlite",), with_peer=False))))

    assert result["errors"] == {}
    for key in STORE_FIGURES:
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    details = result["details"]
    assert details["replayed_events"] == details["verified_events"] == details["log_events"] >= QUICK.log_events
    assert details["signing_timed_events"] == QUICK.signature_events
    assert result["append_postgres_per_s"] is None and result["noop_rpc_per_s"] is None
    assert result["append_vs_peer_sqlite"] is None and result["targets"]["append_vs_peer_sqlite"]["met"] is None
    assert isinstance(result["targets"]["replay_events_per_s"]["met"], bool)
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["python"].startswith("3.")
    assert result["quick"] is True and result["elapsed_s"] > 0


def test_replay_and_verify_count_exactly_the_events_in_the_log(tmp_path):
    phases = RecordedPhases()
    figures = sqlite_store_figures(str(tmp_path), SMALL, phases)

    with sqlite3.connect(tmp_path / "customers.db") as connection:
        stored, streams = connection.execute("SELECT count(*), count(DISTINCT stream_id) FROM events").fetchone()
    assert stored == figures["log_events"] == figures["replayed_events"] == figures["verified_events"]
    assert stored == SMALL.log_events  # grown to exactly the size asked for
    appended_streams = WARM_COMMANDS + SMALL.sqlite_commands
    built = SMALL.log_events - appended_streams
    assert streams == appended_streams + -(-built // SMALL.build_batch)  # one stream per command, per batch
    assert dict(phases.done) == phases.totals  # every phase's progress reaches its total


def test_store_part_with_the_peer_reports_a_ratio(tmp_path):
    from shared.bench import peer_figures

    if peer_figures.UNAVAILABLE:
        result = assemble({"append_sqlite_per_s": 10.0}, {}, [], {}, 1.0, True)
        assert result["append_vs_peer_sqlite"] is None
        return
    peer = peer_figures.PeerStore(peer_figures.sqlite_env(str(tmp_path / "eventsourcing.db")))
    try:
        figures = sqlite_store_figures(str(tmp_path), replace(SMALL, log_events=0), RecordedPhases(), peer)
    finally:
        peer.close()
    with sqlite3.connect(tmp_path / "eventsourcing.db") as connection:
        saved = connection.execute("SELECT count(*) FROM stored_events").fetchone()[0]
    assert saved == WARM_COMMANDS + SMALL.sqlite_commands  # one aggregate, one event per command
    result = assemble(figures, {}, [], {}, 1.0, True)
    assert result["peer_append_sqlite_per_s"] > 0 and result["append_vs_peer_sqlite"] > 0
    expected = figures["append_sqlite_per_s"] / figures["peer_append_sqlite_per_s"]
    assert result["append_vs_peer_sqlite"] == round(expected, 3)


def test_percentile_is_nearest_rank():
    values = [float(value) for value in range(100, 0, -1)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_registrations_have_distinct_valid_phones():
    phones = {registration(number)["phone"] for number in range(1, 1001)}
    assert len(phones) == 1000
    assert all(phone.isdigit() and 6 <= len(phone) <= 15 for phone in phones)
