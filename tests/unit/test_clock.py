"""The clock dependency: workers get the injected time, the wall clock by default, never a naive time."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import dummy, entrypoint_hook

from shared.clock import Clock, aware, wall_clock

FIXED = datetime(2024, 10, 12, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


class TimedService:
    name = "timed"
    clock = Clock(now=lambda: FIXED)

    @dummy
    def what_time(self):
        return self.clock.now()


def test_a_worker_reads_the_clock_the_service_declares():
    container = ServiceContainer(TimedService, {})
    container.start()
    try:
        with entrypoint_hook(container, "what_time") as what_time:
            assert what_time() == FIXED
    finally:
        container.stop()


def test_the_default_clock_is_the_wall_clock_in_utc():
    before = datetime.now(timezone.utc)
    now = Clock().now()
    assert before <= now <= datetime.now(timezone.utc) and now.utcoffset() == timedelta(0)
    assert wall_clock().tzinfo == timezone.utc


def test_a_clock_giving_naive_times_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        Clock(now=lambda: datetime(2024, 10, 12, 9, 30)).now()


def test_aware_passes_an_aware_moment_through_and_names_a_naive_one():
    assert aware(FIXED, "filed_at") is FIXED
    with pytest.raises(ValueError, match="filed_at must be timezone-aware"):
        aware(datetime(2024, 10, 12), "filed_at")
