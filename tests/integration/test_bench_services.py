"""``crm bench``'s service parts on the real broker: the RPC, complaint and callback figures are measured.

The sizes are tiny, so the figures only have to be there and make sense,
not to be fast; a private virtual host keeps the bench's services apart.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from urllib.parse import unquote, urlsplit

import pytest

from shared.bench.callbacks import callbacks_figures
from shared.bench.campaigns import campaigns_figures
from shared.bench.complaints import complaints_figures
from shared.bench.recovery import recovery_figures
from shared.bench.rpc_figures import rpc_figures
from shared.bench.workload import QUICK
from tests.support import RecordedPhases, private_vhost

TINY = replace(QUICK, rpc_seconds=0.4, rpc_rounds=1, rpc_in_flight=5, latency_samples=5)


@pytest.fixture
def bench_amqp_uri():
    with private_vhost(f"crm-bench-test-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


def test_rpc_part_measures_register_beside_the_no_op(bench_amqp_uri, tmp_path):
    phases = RecordedPhases()
    figures = rpc_figures(bench_amqp_uri, tmp_path, TINY, phases)

    assert figures["noop_rpc_per_s"] > 0 and figures["register_rpc_per_s"] > 0
    assert figures["register_rpc_calls"] > 0 and figures["noop_rpc_calls"] > 0
    assert 0 < figures["register_to_visible_ms_p50"] <= figures["register_to_visible_ms_p99"]
    assert figures["register_to_visible_samples"] == TINY.latency_samples
    assert dict(phases.done) == phases.totals


def test_complaints_part_measures_commands_and_latency_across_services(bench_amqp_uri, tmp_path):
    phases = RecordedPhases()
    figures = complaints_figures(bench_amqp_uri, tmp_path, TINY, phases)

    assert figures["complaint_commands_per_s"] > 0 and figures["complaint_rpc_calls"] > 0
    assert 0 < figures["complaint_file_to_visible_ms_p50"] <= figures["complaint_file_to_visible_ms_p99"]
    assert 0 < figures["customer_to_complaints_ms_p50"] <= figures["customer_to_complaints_ms_p99"]
    assert figures["complaint_file_to_visible_samples"] == TINY.latency_samples
    assert dict(phases.done) == phases.totals


def test_callbacks_part_measures_attempts_beside_the_no_op_and_resolved_to_due_latency(bench_amqp_uri, tmp_path):
    phases = RecordedPhases()
    figures = callbacks_figures(bench_amqp_uri, tmp_path, TINY, phases)

    assert figures["callback_attempts_per_s"] > 0 and figures["callback_noop_rpc_per_s"] > 0
    assert figures["callback_attempts_vs_noop"] == figures["callback_attempts_per_s"] / figures["callback_noop_rpc_per_s"]
    assert 0 < figures["complaint_resolved_to_callback_due_ms_p50"] <= figures["complaint_resolved_to_callback_due_ms_p99"]
    assert figures["complaint_resolved_to_callback_due_samples"] == TINY.latency_samples
def test_campaigns_part_runs_a_campaign_twice_and_reads_the_process_memory(bench_amqp_uri, tmp_path):
    phases = RecordedPhases()
    figures = campaigns_figures(bench_amqp_uri, tmp_path, replace(TINY, campaign_customers=300), phases)

    assert figures["campaign_customers"] == 300 and figures["campaign_send_per_s"] > 0
    assert 0 < figures["campaign_rerun_s"] and figures["campaign_rerun_ratio"] == \
        figures["campaign_rerun_s"] / figures["campaign_run_s"]
    assert 30 < figures["campaign_peak_rss_mb"] < 1000
    assert dict(phases.done) == phases.totals


def test_recovery_part_times_the_catch_up_after_a_consumer_restart_and_a_broker_outage(bench_amqp_uri, tmp_path):
    phases = RecordedPhases()
    vhost = unquote(urlsplit(bench_amqp_uri).path[1:])
    figures = recovery_figures(bench_amqp_uri, vhost, tmp_path, phases)

    assert figures["catch_up_after_consumer_restart_s"] > 0
    assert figures["catch_up_after_broker_restart_s"] > 0
    assert dict(phases.done) == phases.totals
