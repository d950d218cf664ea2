"""Gap fills reuse one connection: the broker's queues and connections stay flat however many there are."""

from __future__ import annotations

from nameko.testing.utils import get_extension

from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.event_log import EventLog
from tests.e2e.outages import connections, queues, vhost_of
from tests.support import rpc_as, running, service_config, wait_for

GAP_FILLS = 200


def test_many_gap_fills_open_no_new_queues_or_connections(fault_vhost, tmp_path):
    config = service_config(tmp_path, fault_vhost)  # SQLite stores in tmp_path
    vhost = vhost_of(fault_vhost)
    with running(CustomersService, config), running(ComplaintsService, config) as complaints:
        with rpc_as(config, "agent") as proxy:
            for number in range(5):
                proxy.customers.register(name=f"客户{number}", phone=f"136{number:08d}")
        fetch = get_extension(complaints, EventLog).fetch_upstream
        assert len(fetch("customers", 0, 500)) == 5  # the client is open now
        wait_for(lambda: len(connections(vhost)) > 0, what="the management API to list the connections")
        queues_before, connections_before = sorted(queues(vhost)), len(connections(vhost))
        for after_position in range(GAP_FILLS):
            fetch("customers", after_position % 5, 1)
        assert sorted(queues(vhost)) == queues_before
        assert len(connections(vhost)) <= connections_before  # the listing may still show closed ones
