"""A consumer's lag behind an upstream, in events and seconds."""

from __future__ import annotations

from shared.lag import upstream_lag


def test_a_consumer_at_the_head_has_no_lag():
    lag = upstream_lag((7, "2026-01-01T00:00:07.000000Z"), 7, ("2026-01-01T00:00:07.000000Z", 100.0), now=102.5)
    assert lag == {"head": 7, "applied": 7, "lag_events": 0, "lag_seconds": 0.0,
                   "since_last_applied_seconds": 2.5}


def test_a_consumer_behind_counts_events_and_the_producer_time_between_them():
    lag = upstream_lag((3982, "2026-01-01T00:01:00.500000Z"), 1000, ("2026-01-01T00:00:10.000000Z", 50.0), now=60.0)
    assert (lag["lag_events"], lag["lag_seconds"], lag["since_last_applied_seconds"]) == (2982, 50.5, 10.0)


def test_an_upstream_not_asked_yet_or_nothing_applied_yet_says_so():
    assert upstream_lag(None, 5, None, now=1.0) == {"head": None, "applied": 5, "lag_events": None,
                                                   "lag_seconds": None, "since_last_applied_seconds": None}
    behind = upstream_lag((9, "2026-01-01T00:00:09.000000Z"), 0, None, now=1.0)
    assert (behind["lag_events"], behind["lag_seconds"]) == (9, None)
