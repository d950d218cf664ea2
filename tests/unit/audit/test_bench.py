"""``crm bench``'s audit part: it runs through the bench runner and reports every audit figure (no thresholds)."""

from __future__ import annotations

import dataclasses
import json

from shared.bench.report import assemble, to_json
from shared.bench.runner import Options, run_bench
from shared.bench.workload import QUICK

TINY = dataclasses.replace(QUICK, audit_ingest_events=600, audit_ledger_entries=3000)


def test_the_audit_part_measures_ingest_replay_verify_and_proofs():
    result = json.loads(to_json(run_bench(Options(quick=True, parts=("audit",), with_peer=False, sizes=TINY))))
    assert result["errors"] == {}
    assert result["audit_ledger_entries"] == 3000 and result["details"]["audit_ingest_events"] == 600
    for key in ("audit_ingest_events_per_s", "audit_replay_events_per_s", "audit_verify_events_per_s",
                "audit_checkpoint_ms", "audit_inclusion_proof_ms", "audit_consistency_proof_ms",
                "audit_rss_mb_at_tenth", "audit_rss_mb_at_full"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    assert set(result["targets"]) >= {"audit_ingest_events_per_s", "audit_replay_events_per_s",
                                      "audit_verify_events_per_s"}


def test_the_ledger_read_rates_are_set_beside_the_store_rates_of_the_same_run():
    both = assemble({"replay_events_per_s": 150_000.0, "verify_events_per_s": 200_000.0,
                     "audit_replay_events_per_s": 120_000.0, "audit_verify_events_per_s": 180_000.0}, {}, [], {}, 1.0,
                    True)
    assert both["audit_replay_vs_store"] == 0.8 and both["audit_verify_vs_store"] == 0.9
    alone = assemble({"audit_replay_events_per_s": 120_000.0}, {}, [], {}, 1.0, True)
    assert alone["audit_replay_vs_store"] is None and alone["audit_verify_vs_store"] is None
