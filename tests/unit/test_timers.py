"""The leased timer's settings: its interval from config, and what it refuses.

Replicas sharing a database, the lease and the handover are in
tests/integration/test_leased_timer.py.
"""

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.utils import get_extension

from shared.errors import ValidationError
from shared.timers import LeasedTimer, leased_timer


class Ticker:
    name = "ticker"

    @leased_timer("ticker.tick", interval=60, config_key=("TICKER", "tick_seconds"))
    def tick(self):
        pass


def set_up_timer(container: ServiceContainer) -> LeasedTimer:
    """The container's timer after ``setup`` (the container must outlive it: it is weakly referenced)."""
    timer = get_extension(container, LeasedTimer)
    timer.setup()
    return timer


@pytest.mark.parametrize("config, interval", [
    ({}, 60),
    ({"TICKER": {}}, 60),
    ({"TICKER": {"tick_seconds": None}}, 60),
    ({"TICKER": {"tick_seconds": 0.5}}, 0.5),
    ({"TICKER": {"tick_seconds": 300}}, 300),
])
def test_the_interval_comes_from_config_when_set(config, interval):
    container = ServiceContainer(Ticker, config)
    timer = set_up_timer(container)
    assert timer.interval == interval and timer.lease_name == "ticker.tick"


@pytest.mark.parametrize("seconds", [0, -5, "60", True])
def test_a_bad_interval_is_refused_naming_the_setting(seconds):
    container = ServiceContainer(Ticker, {"TICKER": {"tick_seconds": seconds}})
    with pytest.raises(ValidationError) as refused:
        set_up_timer(container)
    assert list(refused.value.fields) == ["TICKER.tick_seconds"]


def test_a_service_without_an_event_log_cannot_start_a_leased_timer():
    container = ServiceContainer(Ticker, {})
    with pytest.raises(TypeError, match="ticker needs an EventLog dependency"):
        container.start()
    container.kill()
